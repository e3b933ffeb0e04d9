/** Words for a policy's settings in lists. */
import type { Policy } from '../../api/types';

/** "7 daily · 4 weekly · 6 monthly" (rules at 0 left out). */
export function retentionText(r: Policy['retention']): string {
  const parts = (['daily', 'weekly', 'monthly', 'yearly'] as const).filter((k) => r[k] > 0).map((k) => `${r[k]} ${k}`);
  return parts.length ? parts.join(' · ') : 'keeps the newest only';
}

export type TagType = 'default' | 'success' | 'warning' | 'error' | 'info';

/** Tag colour of a schedule occurrence's outcome. */
export function outcomeType(outcome: string): TagType {
  switch (outcome) {
    case 'succeeded':
      return 'success';
    case 'running':
      return 'info';
    case 'partial':
    case 'missed':
    case 'no_pools':
    case 'canceled':
      return 'warning';
    case 'failed':
    case 'interrupted':
      return 'error';
    default:
      return 'default';
  }
}

export function outcomeText(outcome: string): string {
  return outcome === 'no_pools' ? 'no pools' : outcome;
}
