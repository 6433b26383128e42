// Kernel-side evidence: what a FUSE connection was asked (fuse:fuse_request_send/end) and
// what the server did with backing ids (syscalls:sys_enter/exit_ioctl), read from tracefs
// instances of our own. See session.ts for how events are collected, ledger.ts for how
// backing ids are accounted, parse.ts for the trace format.
export {
  EvidenceSession,
  EvidenceUnavailableError,
  EvidenceLostError,
  tracefsStatus,
  sweepStaleInstances,
  useInstanceOwner,
  useInstanceRegistry,
  threadsOf,
  TRACEFS_ROOT,
  SYNC_SYSCALLS,
  type EvidenceOptions,
  type EvidenceWindow,
  type TracefsStatus,
} from './session.ts';
export { BackingLedger, type BackingOpen, type BackingClose, type Association, type RequestLink } from './ledger.ts';
export {
  parseTraceLine,
  parseTrace,
  summariseRequests,
  findMarker,
  countOf,
  hexRet,
  FUSE_OPCODES,
  BACKING_OPEN_CMD,
  BACKING_CLOSE_CMD,
  type TraceEvent,
  type TraceSource,
  type RequestSummary,
  type RequestError,
} from './parse.ts';
export {
  ReplyTracer,
  ReplyTracerError,
  replyTracerStatus,
  parseReplyLine,
  REPLY_TRACER_BIN,
  REPLY_TRACER_DIR,
  type ReplyEvent,
  type KernelRequest,
  type KernelEnd,
  type ServerReply,
  type BackingCall,
  type ReplyTracerStatus,
} from './replies.ts';
export { Timeline, renderExcerpt, describeOpenReply, type RequestRecord, type IdLife, type TransportCounts } from './timeline.ts';
export * as wire from './wire.ts';
