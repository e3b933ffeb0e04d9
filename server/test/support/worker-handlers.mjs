// Preloaded (node --import) into real `backroll start` child processes by the job tests:
// registers test task kinds through the same module the server applies at start.
import fs from 'node:fs';
import path from 'node:path';
import { defineTaskHandlers } from '../../dist/app/task-handlers.js';

const markerDir = process.env.BACKROLL_TEST_MARKER_DIR;
const mark = (name, content) => markerDir && fs.writeFileSync(path.join(markerDir, name), String(content));

const blockUntilAborted = (signal) =>
  new Promise((_, reject) => {
    if (signal.aborted) return reject(signal.reason);
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });

defineTaskHandlers((tasks) => {
  tasks.registerHandler('test.quick', async (payload, ctx) => {
    await ctx.log('info', `quick on pid ${process.pid}`);
    return { pid: process.pid, payload };
  });
  const block = async (_payload, ctx) => {
    await ctx.log('info', `blocking on pid ${process.pid}`);
    mark(`${ctx.taskId}.started`, process.pid);
    await blockUntilAborted(ctx.signal);
  };
  const recover = async (task) => mark(`${task.id}.recovered`, process.pid);
  tasks.registerHandler('test.block', block, { recover });
  tasks.registerHandler('test.block-retry', block, { recover, retryInterrupted: true });
});

// The engine's pool.backup when it is there; until then one that records the run.
defineTaskHandlers(
  (tasks) => {
    if (tasks.hasHandler('pool.backup')) return;
    tasks.registerHandler('pool.backup', async (payload, ctx) => {
      await ctx.log('info', `test pool.backup on pid ${process.pid}`);
      return { pid: process.pid, payload };
    });
  },
  { fallback: true },
);
