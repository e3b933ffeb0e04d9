/**
 * Test-only: an in-process SSH server (ssh2's Server) whose "commands" are scripted handlers,
 * to unit-test the client's protocol handling without a lab. Not a replacement for lab tests.
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import ssh2 from 'ssh2';
import type { Connection, ParsedKey, ServerChannel } from 'ssh2';
import { buildCommand } from './quote.js';

const { Server, utils } = ssh2;

export interface ExecContext {
  command: string;
  env: Record<string, string>;
  stream: ServerChannel;
  /** Signals the client sent on this channel (`KILL`, …). ssh2's server drops them after stdin EOF. */
  signals: string[];
  /** The channel has been closed (by either side). */
  closed: boolean;
  connection: Connection;
  /** Collects all stdin; resolves at EOF. */
  stdin(): Promise<Buffer>;
}

export type Handler = (ctx: ExecContext) => void;

export interface TestSshServer {
  port: number;
  hostPublicKey: string;
  clientPrivateKey: string;
  otherPrivateKey: string;
  username: string;
  /** Commands seen, as received strings. */
  commands: string[];
  /** All ExecContexts, for inspecting signals/close after the fact. */
  contexts: ExecContext[];
  connections: number;
  /** argv → handler; unknown commands exit 127. */
  on(argv: string[], handler: Handler): void;
  close(): Promise<void>;
}

export async function startTestSshServer(username = 'tester'): Promise<TestSshServer> {
  const host = utils.generateKeyPairSync('ed25519');
  const client = utils.generateKeyPairSync('ed25519');
  const other = utils.generateKeyPairSync('ed25519');
  const allowed = utils.parseKey(client.public) as ParsedKey;
  const handlers = new Map<string, Handler>();
  const sockets = new Set<Connection>();

  const state: TestSshServer = {
    port: 0,
    hostPublicKey: host.public,
    clientPrivateKey: client.private,
    otherPrivateKey: other.private,
    username,
    commands: [],
    contexts: [],
    connections: 0,
    on: (argv, h) => handlers.set(buildCommand(argv), h),
    close: async () => {
      for (const c of sockets) c.end();
      server.close();
      await once(server, 'close').catch(() => {});
    },
  };

  const server = new Server({ hostKeys: [host.private] }, (conn) => {
    state.connections++;
    sockets.add(conn);
    conn.on('close', () => sockets.delete(conn));
    conn.on('error', () => {});
    conn.on('authentication', (ctx) => {
      if (
        ctx.method === 'publickey' &&
        ctx.username === username &&
        ctx.key.algo === allowed.type &&
        ctx.key.data.equals(allowed.getPublicSSH())
      ) {
        if (ctx.signature && allowed.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) !== true) return ctx.reject();
        return ctx.accept();
      }
      ctx.reject(['publickey']);
    });
    conn.on('ready', () => {
      conn.on('session', (accept) => {
        const session = accept();
        const env: Record<string, string> = {};
        const signals: string[] = [];
        session.on('env', (acc, _rej, info) => {
          env[info.key] = info.val;
          acc?.();
        });
        session.on('signal', (acc, _rej, info) => {
          signals.push(info.name);
          acc?.();
        });
        session.on('exec', (acc, _rej, info) => {
          const stream = acc();
          state.commands.push(info.command);
          let stdinP: Promise<Buffer> | null = null;
          const ctx: ExecContext = {
            command: info.command,
            env,
            stream,
            signals,
            closed: false,
            connection: conn,
            stdin: () =>
              (stdinP ??= new Promise((resolve) => {
                const parts: Buffer[] = [];
                stream.on('data', (d: Buffer) => parts.push(d));
                stream.on('end', () => resolve(Buffer.concat(parts)));
              })),
          };
          state.contexts.push(ctx);
          stream.on('close', () => (ctx.closed = true));
          const h = handlers.get(info.command);
          if (!h) {
            stream.stderr.write(`unknown command: ${info.command}\n`);
            stream.exit(127);
            stream.end();
            return;
          }
          h(ctx);
        });
      });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  state.port = (server.address() as AddressInfo).port;
  return state;
}
