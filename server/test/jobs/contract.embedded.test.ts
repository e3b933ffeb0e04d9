import { describe } from 'vitest';
import { DIALECTS, unavailableReason } from '../support/databases.js';
import { jobContractSuite } from './contract-suite.js';

const reasons = Object.fromEntries(await Promise.all(DIALECTS.map(async (d) => [d, await unavailableReason(d)] as const)));

for (const dialect of DIALECTS) {
  const reason = reasons[dialect];
  if (reason) describe.skip(`job system contract: embedded on ${dialect} (skipped: ${reason})`, () => {});
  else jobContractSuite('embedded', dialect);
}
