/**
 * A local unix socket whose every connection is a stream to a unix socket on a host, over the
 * host's pinned SSH connection (`ssh -L local.sock:remote.sock`, without an ssh binary): the
 * worker reads the NBD export of a backup job the host serves on its own socket, so the VM's
 * storage need not be mounted on the worker.
 *
 * The local socket lives in a fresh directory of mode 0700 under `parentDir` (only the worker's
 * user can connect); `close()` stops listening, ends every open stream and removes the directory.
 */
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { AppError } from '../../errors.js';

export type UnixStreamOpener = (remotePath: string) => Promise<Duplex>;

export interface UnixForward {
  /** The local socket to connect to. */
  readonly localPath: string;
  /** Connections accepted so far (each one an SSH channel). */
  readonly connections: number;
  close(): Promise<void>;
}

/** Longest unix socket path Linux accepts (sun_path is 108 bytes, NUL included). */
const MAX_SOCKET_PATH = 107;

export async function forwardUnixSocket(open: UnixStreamOpener, remotePath: string, parentDir: string, name = 'nbd.sock'): Promise<UnixForward> {
  await fs.mkdir(parentDir, { recursive: true, mode: 0o700 });
  const dir = await fs.mkdtemp(path.join(parentDir, 'fwd-'));
  await fs.chmod(dir, 0o700);
  const localPath = path.join(dir, name);
  if (Buffer.byteLength(localPath) > MAX_SOCKET_PATH) {
    await fs.rm(dir, { recursive: true, force: true });
    throw new AppError('invalid', 'BACKUP.SOCKET_PATH_TOO_LONG', `the local socket path ${localPath} is longer than a unix socket allows: use a shorter data directory`);
  }
  const live = new Set<net.Socket | Duplex>();
  // An ssh2 channel is closed with close() (CHANNEL_CLOSE to the server); destroy() alone may leave it open.
  const end = (s: Duplex) => {
    (s as Duplex & { close?: () => void }).close?.();
    s.destroy();
  };
  let connections = 0;
  let closing = false;
  const server = net.createServer((local) => {
    connections++;
    live.add(local);
    local.pause();
    local.on('error', () => undefined);
    local.on('close', () => live.delete(local));
    open(remotePath).then(
      (remote) => {
        if (closing || local.destroyed) {
          end(remote);
          return;
        }
        live.add(remote);
        remote.on('error', () => local.destroy());
        local.on('error', () => end(remote));
        remote.on('close', () => {
          live.delete(remote);
          local.destroy();
        });
        local.on('close', () => end(remote));
        local.pipe(remote);
        remote.pipe(local);
        local.resume();
      },
      () => local.destroy(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(localPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    localPath,
    get connections() {
      return connections;
    },
    async close() {
      closing = true;
      for (const s of live) (s instanceof net.Socket ? s.destroy() : end(s));
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
