import { describe, it } from 'vitest';

/**
 * A suite that cannot run here (its database, Redis, the lab or a tool is missing) is
 * registered as one skipped test that names the reason. `describe.skip(name, () => {})`
 * with an empty body registers no test at all, so the run's skip counter
 * (scripts/ci/summary.mjs, which fails CI on any skip) would never see it.
 */
export function describeUnavailable(title: string, reason: string): void {
  describe(title, () => {
    it.skip(`SKIPPED: ${reason}`, () => undefined);
  });
}

/** `describe(title, body)` when `reason` is null; otherwise one counted skipped test with the reason. */
export function describeWhenAvailable(title: string, reason: string | null, body: () => void): void {
  if (reason === null) describe(title, body);
  else describeUnavailable(title, reason);
}
