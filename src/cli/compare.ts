// `fusecert compare` and the end of a multi-server run: the page itself lives in src/report/compare.ts.
export { writeComparison, loadResults, buildComparison, renderHtml, renderMarkdown } from '../report/compare.ts';
