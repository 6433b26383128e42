// What a suite imports. See README "Writing a clause".
export {
  clause,
  clauseEach,
  unmetRequirement,
  HungError,
  type ClauseContext,
  type ClauseDefinition,
  type ClauseEachDefinition,
  checkDefinition,
  type ClauseMeta,
  type Requirement,
} from './clause.ts';
export { useMount, forEachVariant, sideBySide, startTracer, Mount, type MountOptions } from './clause-mount.ts';
export { runContext, selected, type RunContext } from './context.ts';
export { check, fail, expectBytes, errnoFrom, errnoOf, ClauseFailure } from './expect.ts';
export { pattern, loadTree, type TreeSpec } from '../mount/index.ts';
export { MapperChild, MapperError, withMapper } from './child.ts';
export { attrViews, fstatView, statView, statxView, expectSize, plainViews, msOf, type AttrView, type Views } from './attrs.ts';
export { expectFile, preadFull, applyWrite, applyTruncate, usedBytes } from './files.ts';
export { quiesce, requestsDuring, expectNoServerIO, ledgerFailures, serverIoCause, windowSummary, counts, type Observed } from './windows.ts';
export {
  devFuseFds,
  borrowDeviceFd,
  backingOpen,
  backingClose,
  probeNegotiation,
  probeStackDepth,
  probeBackingOpen,
  backingOpenOnOverlay,
  type NegotiationProbe,
  type StackDepthProbe,
} from './probe.ts';
export { withReference, platformFact, checkFact, IO_MODE_CONFLICTS, type FactId, type FactResult, type RefMount } from './platform-facts.ts';
export { FileOpens, flagNames, type HeldOpen } from './opens.ts';
export { runFsx, fsxCommands, MAP_LEN, type FsxModel, type FsxReal, type FsxOptions, type FsxOutcome } from './fsx-model.ts';
export { renderRepro, writeRepro, type ReproOp, type FlagName } from './repro.ts';
export { medianInterval, type Interval } from './stats.ts';
