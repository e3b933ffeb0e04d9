/**
 * Task kind `inventory.refresh`: payload `{ hostId?: string }` (all hosts without one); the
 * result is the refresh summary. Lets clients run a long refresh in the background and follow it.
 */
import { invalid } from '../errors.js';
import type { TaskService } from '../tasks/task.service.js';
import type { InventoryService } from './inventory.service.js';

export const INVENTORY_REFRESH = 'inventory.refresh';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function registerInventoryHandlers(tasks: TaskService, inventory: InventoryService): void {
  tasks.registerHandler<{ hostId?: string } | null, unknown>(INVENTORY_REFRESH, async (payload, ctx) => {
    const hostId = payload?.hostId;
    if (hostId !== undefined && (typeof hostId !== 'string' || !UUID.test(hostId))) {
      throw invalid('TASK.PAYLOAD_INVALID', 'inventory.refresh takes { "hostId": "<uuid>" } or nothing');
    }
    ctx.progress({ step: hostId ? `host ${hostId}` : 'all hosts' });
    const summary = hostId ? await inventory.refreshHost(hostId) : await inventory.refreshAll();
    for (const h of summary.hosts) {
      await ctx.log(
        h.ok ? 'info' : 'warn',
        h.ok
          ? `${h.hostName}: ${h.found} found, ${h.added} added, ${h.updated} updated, ${h.disappeared} disappeared`
          : `${h.hostName}: ${h.error?.code}: ${h.error?.message}`,
      );
    }
    return summary;
  });
}
