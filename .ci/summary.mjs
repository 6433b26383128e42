// Prints the one closing line CI reads ("N passed, N failed, N skipped") and fails on any skip:
// in CI every test has root, FUSE and tracefs, so a skip means something is missing.
import { readFileSync, existsSync } from 'node:fs';

const [file, codeArg] = process.argv.slice(2);
const code = Number(codeArg);
if (!existsSync(file)) {
  console.log(`tests: no results (${file} missing: the build, the typecheck or vitest itself failed, exit ${code})`);
  console.log('0 passed, 1 failed');
  process.exit(code || 1);
}
const r = JSON.parse(readFileSync(file, 'utf8'));
const passed = r.numPassedTests;
// files that failed without a failing test (an import error, a failing hook) count once each
const brokenFiles = r.testResults.filter((f) => f.status === 'failed' && !f.assertionResults.some((t) => t.status === 'failed')).length;
const failed = r.numFailedTests + brokenFiles;
const skipped = r.numPendingTests + r.numTodoTests;
if (skipped > 0) {
  for (const s of r.testResults)
    for (const t of s.assertionResults) if (t.status === 'pending' || t.status === 'skipped') console.log(`skipped under strict: ${t.fullName}`);
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(code !== 0 || failed > 0 || skipped > 0 ? 1 : 0);
