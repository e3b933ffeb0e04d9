/**
 * The exit status of a channel, recorded from the moment the channel exists.
 *
 * ssh2 emits a channel's 'exit' once, while parsing the packet that carries it. When the
 * exec reply and the exit status of a quick command arrive in one read (the event loop was
 * busy meanwhile), both are parsed in one go: the channel is handed over, and 'exit' is
 * emitted before a listener attached after an `await` exists. The status was then lost
 * and the command reported as ended without one.
 */
import type { ClientChannel } from 'ssh2';

export interface ExitStatus {
  code: number | null;
  signal: string | null;
}

const seen = new WeakMap<ClientChannel, ExitStatus>();

/** Call synchronously where ssh2 hands the channel over. */
export function recordExit(channel: ClientChannel): void {
  channel.once('exit', (code: number | null, signal?: string) => seen.set(channel, { code, signal: signal ?? null }));
}

/** The status recorded by `recordExit`, if the command has exited. */
export function exitOf(channel: ClientChannel): ExitStatus | undefined {
  return seen.get(channel);
}
