export { ServerInstance, ServerStartError, serverPids, type StopReport } from './server.ts';
export { procStat, hasExited, allPids, pidsWhere, threadIds, liveThreads, type ProcStat } from './proc.ts';
export { makeWorkspace, type Workspace, type SourceKind } from './source.ts';
export { mounts, mountsUnder, fuseMountAt, abortConnection, connectionWaiting, type MountEntry } from './mountinfo.ts';
export { register, sweep, alive, processStart, stateDir, useRegistry, type Resource } from './registry.ts';
export { pattern, loadTree, seedTree, type TreeSpec } from './tree.ts';
export { fuseFdsOf, connectionsHeldBy } from './fuse-fds.ts';
export { useCleanupTrace, traceCleanup } from './trace.ts';
