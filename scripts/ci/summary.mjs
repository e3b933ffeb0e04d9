#!/usr/bin/env node
// Prints the suite's closing line "N passed, N failed, N skipped" from vitest's JSON
// report, and exits non-zero when a test failed, or (in CI) when any was skipped:
// CI must run every test, so a skip means a component is missing.
import fs from 'node:fs';

// One or more reports (the suite runs its projects one after the other): their sums.
const files = process.argv.slice(2);
const report = { numPassedTests: 0, numFailedTests: 0, numRuntimeErrorTestSuites: 0, numPendingTests: 0, numTodoTests: 0, testResults: [] };
for (const file of files) {
  let one;
  try {
    one = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    console.log(`test report ${file} is missing or unreadable: ${err.message}`);
    console.log('0 passed, 1 failed, 0 skipped');
    process.exit(1);
  }
  for (const k of ['numPassedTests', 'numFailedTests', 'numRuntimeErrorTestSuites', 'numPendingTests', 'numTodoTests']) report[k] += one[k] ?? 0;
  report.testResults.push(...(one.testResults ?? []));
}
const passed = report.numPassedTests ?? 0;
const failed = (report.numFailedTests ?? 0) + (report.numRuntimeErrorTestSuites ?? 0);
const failedSuites = (report.testResults ?? []).filter((r) => r.status === 'failed' && (r.assertionResults ?? []).length === 0);
for (const s of failedSuites) console.log(`suite failed to run: ${s.name}: ${(s.message ?? '').split('\n')[0]}`);
// A test file that ran and registered no test at all (e.g. only `describe.skip(name, () => {})`)
// vanished silently: it counts as a skip, so CI fails on it too.
const emptyFiles = (report.testResults ?? []).filter((r) => r.status !== 'failed' && (r.assertionResults ?? []).length === 0);
for (const f of emptyFiles) console.log(`registered no test: ${f.name}`);
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0) + emptyFiles.length;
const skippedTests = (report.testResults ?? []).flatMap((r) =>
  (r.assertionResults ?? []).filter((a) => a.status === 'pending' || a.status === 'skipped' || a.status === 'todo').map((a) => a.fullName),
);
if (skippedTests.length > 0) {
  console.log('skipped:');
  for (const name of [...new Set(skippedTests.map((n) => n.replace(/ > [^>]*$/, '')))]) console.log(`  ${name}`);
}
const totalFailed = failed + failedSuites.length;
console.log(`${passed} passed, ${totalFailed} failed, ${skipped} skipped`);
if (totalFailed > 0 || passed === 0) process.exit(1);
if (skipped > 0 && process.env.CI) {
  console.log('CI runs with no test skipped: install or start the missing component named above');
  process.exit(1);
}
