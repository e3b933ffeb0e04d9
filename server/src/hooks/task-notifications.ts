import type { Db } from '../db/database.js';
import type { Registration } from '../tasks/handler-registry.js';
import type { TaskLogLevel } from '../tasks/task-context.js';
import type { JobLogger, TaskEndListener } from '../tasks/task-lifecycle.js';
import type { TaskRecord } from '../tasks/task.repository.js';
import type { TaskState } from '../tasks/task.state.js';
import type { HookNotifier, HookMessage } from './hook.notifier.js';
import { HOOK_EVENTS, type HookEvent } from './hook.repository.js';
import type { HookService } from './hook.service.js';

interface PolicyRef {
  id: string;
  name: string;
  hookId: string | null;
}

/** Finds the policy a task belongs to: its payload's policyId, else through its target (pool, host, vm). */
export class TaskPolicyLookup {
  constructor(private readonly db: Db) {}

  async policyOf(task: TaskRecord): Promise<PolicyRef | undefined> {
    const payload = task.payload as { policyId?: unknown } | null;
    if (payload && typeof payload.policyId === 'string') return this.policy(payload.policyId);
    if (!task.targetId) return undefined;
    let poolId: string | undefined;
    switch (task.targetType) {
      case 'pool':
        poolId = task.targetId;
        break;
      case 'host':
        poolId = (await this.db.selectFrom('hosts').select('pool_id').where('id', '=', task.targetId).executeTakeFirst())?.pool_id;
        break;
      case 'vm':
      case 'virtual_machine':
      case 'virtual-machine':
        poolId = (
          await this.db
            .selectFrom('virtual_machines')
            .innerJoin('hosts', 'hosts.id', 'virtual_machines.host_id')
            .select('hosts.pool_id')
            .where('virtual_machines.id', '=', task.targetId)
            .executeTakeFirst()
        )?.pool_id;
        break;
      default:
        return undefined;
    }
    if (!poolId) return undefined;
    const pool = await this.db.selectFrom('pools').select('policy_id').where('id', '=', poolId).executeTakeFirst();
    return pool ? this.policy(pool.policy_id) : undefined;
  }

  private async policy(id: string): Promise<PolicyRef | undefined> {
    const row = await this.db.selectFrom('policies').select(['id', 'name', 'hook_id']).where('id', '=', id).executeTakeFirst();
    return row && { id: row.id, name: row.name, hookId: row.hook_id };
  }
}

/** succeeded → `<family>.succeeded`; failed, interrupted, partial → `<family>.failed`; canceled → none. */
export function hookEventFor(family: string, state: TaskState): HookEvent | undefined {
  const suffix = state === 'succeeded' ? 'succeeded' : state === 'failed' || state === 'interrupted' || state === 'partial' ? 'failed' : undefined;
  if (!suffix) return undefined;
  const event = `${family}.${suffix}`;
  return (HOOK_EVENTS as readonly string[]).includes(event) ? (event as HookEvent) : undefined;
}

/**
 * Sends the policy's hook when a task of a kind registered with `notify` ends.
 * A hook that fails is logged on the task; it never changes the task's outcome.
 */
export class TaskNotifications implements TaskEndListener {
  constructor(
    private readonly deps: { lookup: TaskPolicyLookup; hooks: HookService; notifier: HookNotifier; publicUrl: string; logger: JobLogger },
  ) {}

  async taskEnded(task: TaskRecord, registration: Registration | undefined, log: (level: TaskLogLevel, message: string) => Promise<void>): Promise<void> {
    const notify = registration?.options.notify;
    if (!notify || (task.parentId && !notify.whenChild)) return;
    const event = hookEventFor(notify.event, task.state);
    if (!event) return;
    try {
      const policy = await this.deps.lookup.policyOf(task);
      if (!policy?.hookId) return;
      const hook = await this.deps.hooks.target(policy.hookId);
      if (!hook.events.includes(event)) return;
      const result = await this.deps.notifier.deliver(hook, this.message(task, event, policy), { taskId: task.id });
      if (result.delivered) {
        await log('info', `notified hook "${hook.name}" (${event}) in ${result.attempts} attempt(s)`);
      } else {
        await log('warn', `hook "${hook.name}" (${event}) could not be notified after ${result.attempts} attempt(s): ${result.error ?? 'unknown error'}`);
      }
    } catch (err) {
      this.deps.logger.warn({ err, taskId: task.id }, 'task notification failed');
      await log('warn', `notification failed: ${(err as Error).message}`).catch(() => undefined);
    }
  }

  private message(task: TaskRecord, event: HookEvent, policy: PolicyRef): HookMessage {
    const ok = event.endsWith('.succeeded');
    const target = task.targetType ? `${task.targetType} ${task.targetId ?? ''}`.trim() : 'no target';
    const error = task.error ? `: ${task.error.code}: ${task.error.message}` : '';
    const link = `${this.deps.publicUrl}/api/v2/tasks/${task.id}`;
    return {
      event,
      text: `${ok ? ':white_check_mark:' : ':x:'} Backroll ${event} — ${task.kind} on ${target} (policy "${policy.name}") ended ${task.state}${error}. Task ${link}`,
      data: {
        task: {
          id: task.id,
          kind: task.kind,
          state: task.state,
          target: task.targetType ? { type: task.targetType, id: task.targetId } : null,
          parentId: task.parentId,
          startedBy: task.startedBy,
          createdAt: task.createdAt,
          startedAt: task.startedAt,
          finishedAt: task.finishedAt,
          error: task.error,
          result: task.result,
          url: link,
        },
        policy: { id: policy.id, name: policy.name },
      },
    };
  }
}
