import { unavailableReason } from '../support/databases.js';
import { redisUnavailableReason } from '../support/redis.js';
import { describeUnavailable } from '../support/unavailable.js';
import { jobContractSuite } from './contract-suite.js';

const redis = await redisUnavailableReason();

/** BullMQ on the machine's Redis; the task rows on PostgreSQL and MariaDB (a distributed installation's databases). */
for (const dialect of ['postgres', 'mysql'] as const) {
  const reason = redis ?? (await unavailableReason(dialect));
  if (reason) describeUnavailable(`job system contract: distributed on ${dialect}`, reason);
  else jobContractSuite('distributed', dialect);
}
