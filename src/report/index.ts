export { ClauseCollector } from './reporter.ts';
export { applyExpectations, isFailure, summarise, platformSummary, type ClauseResult, type Results, type Status } from './results.ts';
export { writeJUnit } from './junit.ts';
export { progressLine, summaryTable } from './console.ts';
export { applyBaseline, compareWithBaseline, baselineMark, describeFigure, DEFAULT_TOLERANCE, type BaselineComparison } from './baseline.ts';
