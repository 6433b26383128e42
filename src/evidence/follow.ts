// ThreadFollower: which tasks' ioctls make the ledger, decided on the events as they are read.
//
// The kernel can do this itself (set_event_pid with options/event-fork), and the session did so
// before; but an instance with a pid list hooks sched_switch and sched_wakeup to keep its
// per-CPU "ignore this task" flag current, and those hooks run on every context switch and wakeup
// of the machine: about 170 ns each here, 6 µs per open/close cycle on a FUSE mount (35 switches
// and wakeups), half the evidence overhead (bench/evidence-breakdown.ts). So the ioctl instance
// records the two backing-id commands (a kernel filter on `cmd`), every ioctl exit and every
// fork and exit of a task, and this class keeps what set_event_pid with event-fork would have
// kept:
// - the threads listed when they were added, from a marker written just before the listing (a
//   thread created after the marker shows as a fork of a listed one, so none is missed);
// - every task a followed task forks from then on (new threads, child processes);
// - until that task exits (a thread id the kernel hands out again is someone else).
// An ioctl exit is kept for a followed thread whatever its command, as the kernel's pid filter
// did: the ledger pairs it with that thread's last enter.
import type { TraceEvent } from './parse.ts';

const FOLLOW = 'fusecert follow ';

export class ThreadFollower {
  private readonly followed = new Set<number>();
  private readonly adds = new Map<string, number[]>();
  private seq = 0;

  /** The marker to write into the instance before listing the threads to add. */
  nextMarker(): string {
    return `${FOLLOW}${++this.seq}`;
  }

  /** The threads listed after `marker` was written: followed from that marker on. */
  add(marker: string, tids: readonly number[]): void {
    this.adds.set(marker, [...tids]);
  }

  /** Whether the event is kept; follow markers, forks and exits are consumed (never kept). */
  keep(e: TraceEvent): boolean {
    switch (e.kind) {
      case 'marker': {
        if (!e.text.startsWith(FOLLOW)) return true;
        const tids = this.adds.get(e.text);
        this.adds.delete(e.text);
        for (const t of tids ?? []) this.followed.add(t);
        return false;
      }
      case 'fork':
        if (this.followed.has(e.parent)) this.followed.add(e.child);
        return false;
      case 'task_exit':
        this.followed.delete(e.pid);
        return false;
      default:
        return this.followed.has(e.tid);
    }
  }

  /** Threads followed as of the events seen so far. */
  threads(): number[] {
    return [...this.followed];
  }
}
