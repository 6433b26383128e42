/* ptfs: INIT negotiation and the probes run after it. */
#ifndef PTFS_INIT_H
#define PTFS_INIT_H

/* Read and answer INIT on the master fd.  Returns 0, or an exit code. */
int handle_init(char *buf);

#endif
