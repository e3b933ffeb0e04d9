import type { Services } from './services.js';
import type { TaskService } from '../tasks/task.service.js';

/**
 * Extra task kinds for a process (tests, plug-ins): the product's kinds are registered
 * by createServices. A module imported before start-up calls `defineTaskHandlers`;
 * `startServer` applies every definition to the process's TaskService before the
 * worker and scheduler start.
 *
 *   defineTaskHandlers((tasks, services) => {
 *     tasks.registerHandler('pool.backup', (payload, ctx) => …, { notify: { event: 'backup' } });
 *   });
 *
 * The scheduler fires `pool.backup`: a worker or scheduler refuses to start
 * without a handler for it (TASK.HANDLER_MISSING).
 */
export type TaskHandlerDefinition = (tasks: TaskService, services: Services) => void;

const definitions: TaskHandlerDefinition[] = [];
const fallbacks: TaskHandlerDefinition[] = [];

/** `fallback`: applied after every other definition (it can then skip kinds someone registered). */
export function defineTaskHandlers(define: TaskHandlerDefinition, opts: { fallback?: boolean } = {}): void {
  (opts.fallback ? fallbacks : definitions).push(define);
}

export function applyTaskHandlers(tasks: TaskService, services: Services): void {
  for (const define of [...definitions, ...fallbacks]) define(tasks, services);
}
