import type { Services } from '../services.js';
import type { TaskService } from './task.service.js';

/**
 * Where task kinds get their handlers. A module that provides kinds (the backup
 * engine: `vm.backup`, `vm.restore`, `pool.backup`, …) calls `defineTaskHandlers`
 * when it is imported; `startServer` imports those modules, then applies every
 * definition to the process's TaskService before the worker and scheduler start.
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
