// Prints the one closing line CI reads ("N passed, N failed, N skipped") and fails on any skip:
// in CI every test has root, FUSE and tracefs, so a skip means something is missing.
import { readFileSync, existsSync } from 'node:fs';

const [file, codeArg, umlArg] = process.argv.slice(2);
const code = Number(codeArg);
// the certification of ptfs inside a UML 6.12 guest (.ci/run): one more check, failed unless exit 0
const uml = umlArg === undefined ? null : Number(umlArg);
if (uml !== null) console.log(`uml: ptfs certification inside UML 6.12 ${uml === 0 ? 'passed' : `failed (exit ${uml})`}`);
const umlFailed = uml !== null && uml !== 0 ? 1 : 0;
if (!existsSync(file)) {
  console.log(`tests: no results (${file} missing: the build, the typecheck or vitest itself failed, exit ${code})`);
  console.log(`0 passed, ${1 + umlFailed} failed`);
  process.exit(code || 1);
}
const r = JSON.parse(readFileSync(file, 'utf8'));
const passed = r.numPassedTests + (uml === 0 ? 1 : 0);
// files that failed without a failing test (an import error, a failing hook) count once each
const brokenFiles = r.testResults.filter((f) => f.status === 'failed' && !f.assertionResults.some((t) => t.status === 'failed')).length;
const failed = r.numFailedTests + brokenFiles + umlFailed;
const skipped = r.numPendingTests + r.numTodoTests;
if (skipped > 0) {
  for (const s of r.testResults)
    for (const t of s.assertionResults) if (t.status === 'pending' || t.status === 'skipped') console.log(`skipped under strict: ${t.fullName}`);
}
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(code !== 0 || failed > 0 || skipped > 0 ? 1 : 0);
