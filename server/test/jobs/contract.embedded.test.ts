import { DIALECTS, unavailableReason } from '../support/databases.js';
import { describeUnavailable } from '../support/unavailable.js';
import { jobContractSuite } from './contract-suite.js';

const reasons = Object.fromEntries(await Promise.all(DIALECTS.map(async (d) => [d, await unavailableReason(d)] as const)));

for (const dialect of DIALECTS) {
  const reason = reasons[dialect];
  if (reason) describeUnavailable(`job system contract: embedded on ${dialect}`, reason);
  else jobContractSuite('embedded', dialect);
}
