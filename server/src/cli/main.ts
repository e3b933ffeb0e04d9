import { Command, InvalidArgumentError, Option } from 'commander';
import { describeConfig, loadConfig, parseRoles, type Config } from '../config/config.js';
import { ensureDataDir } from '../config/data-dir.js';
import { SecretBox } from '../crypto/secret-box.js';
import { migrateToLatest, openDatabase } from '../db/database.js';
import { ConfigError } from '../errors.js';
import { resetAdminPassword } from '../idp/accounts.js';
import { createMachineClient, deleteMachineClient, listMachineClients } from '../idp/clients.js';
import { VERSION } from '../version.js';
import { registerClientCommands } from './client/commands.js';
import { registerDrCommands } from './dr-commands.js';

const out = (s: string) => process.stdout.write(`${s}\n`);

function config(): Config {
  try {
    return loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`backroll: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

export async function main(argv: string[]): Promise<void> {
  // Everything Backroll writes (database, keys, provider state) is for its own user only.
  process.umask(0o077);
  const program = new Command('backroll').description('Backup and restore of KVM virtual machines into BorgBackup').version(VERSION);

  program
    .command('start')
    .description('run Backroll (api, worker and scheduler in one process by default)')
    .option('--roles <roles>', 'comma list of api,worker,scheduler', (v) =>
      parseRoles(v, (msg) => {
        throw new InvalidArgumentError(msg);
      }),
    )
    .action(async (opts: { roles?: Config['roles'] }) => {
      const cfg = config();
      // Loaded only to serve: the provider library warns at import on Node 20 (it prefers 22).
      const { startServer } = await import('../app/server.js');
      const server = await startServer(cfg, {
        roles: opts.roles,
        onAdminCreated: ({ password, passwordFile }) => {
          // Printed once, on the console only (never to the JSON log): the operator's first login.
          process.stderr.write(
            `\n  First start: created the admin account of the bundled OpenID provider.\n` +
              `    user:     admin\n    password: ${password}\n` +
              `  It is also in ${passwordFile} (mode 0600). Change it with \`backroll admin reset-password\`.\n\n`,
          );
        },
      });
      if (server.url) {
        process.stderr.write(
          `  Backroll ${VERSION} is listening on ${cfg.host}:${server.app ? (server.app.server.address() as { port: number }).port : cfg.port}\n` +
            `    open:     ${cfg.publicUrl}/   (the web console; sign in as admin)\n    API docs: ${cfg.publicUrl}/api/docs\n    health:   ${cfg.publicUrl}/api/health\n` +
            (cfg.oidc.embedded ? `    issuer:   ${cfg.oidc.issuer} (admin password file: ${cfg.dataDir}/admin-password.txt)\n` : `    issuer:   ${cfg.oidc.issuer}\n`),
        );
      }
      const stop = async (signal: string) => {
        process.stderr.write(`backroll: ${signal}, shutting down\n`);
        await server.close();
        process.exit(0);
      };
      process.once('SIGINT', () => void stop('SIGINT'));
      process.once('SIGTERM', () => void stop('SIGTERM'));
    });

  program
    .command('migrate')
    .description('apply database migrations and exit')
    .action(async () => {
      const cfg = config();
      ensureDataDir(cfg.dataDir);
      const db = openDatabase(cfg.database);
      try {
        const { applied } = await migrateToLatest(db, cfg.database.dialect);
        out(applied.length ? `applied: ${applied.join(', ')}` : 'database is up to date');
      } finally {
        await db.destroy();
      }
    });

  program
    .command('config')
    .description('configuration')
    .command('check')
    .description('validate the environment and print the effective configuration (secrets masked)')
    .action(() => {
      out(JSON.stringify(describeConfig(config()), null, 2));
    });

  const admin = program.command('admin').description('the bundled OpenID provider administrator account');
  admin
    .command('reset-password')
    .description('replace the admin password with a new random one')
    .action(() => {
      const cfg = config();
      ensureDataDir(cfg.dataDir);
      const { password, passwordFile } = resetAdminPassword(cfg.dataDir);
      out(`new admin password: ${password}\n(also written to ${passwordFile}, mode 0600)`);
    });

  const client = program.command('client').description('machine clients of the bundled provider (client-credentials flow)');
  client
    .command('create <name>')
    .description('create a client; its secret is printed once')
    .addOption(new Option('--role <role>', 'role of the client').choices(['admin', 'viewer']).default('admin'))
    .action((name: string, opts: { role: 'admin' | 'viewer' }) => {
      const cfg = config();
      ensureDataDir(cfg.dataDir);
      const created = createMachineClient(cfg.dataDir, SecretBox.openInDir(cfg.dataDir), name, opts.role);
      out(`client_id:     ${created.clientId}\nclient_secret: ${created.clientSecret}\nrole:          ${created.role}`);
      out(`token URL:     ${cfg.oidc.issuer}/token (grant_type=client_credentials)`);
      out('Store the secret now: it is not shown again.');
    });
  client
    .command('list')
    .description('list clients (no secrets)')
    .action(() => {
      const cfg = config();
      for (const c of listMachineClients(cfg.dataDir)) out(`${c.clientId}\t${c.role}\t${c.name}\t${c.createdAt}`);
    });
  client
    .command('delete <clientId>')
    .description('delete a client; its tokens stop working when they expire')
    .action((clientId: string) => {
      const cfg = config();
      if (!deleteMachineClient(cfg.dataDir, clientId)) {
        process.stderr.write(`backroll: no client ${clientId}\n`);
        process.exit(1);
      }
      out(`deleted ${clientId}`);
    });

  const key = program.command('key').description('borg repository keys');
  key
    .command('export <vm>')
    .description("print the passphrase of a VM's encrypted borg repository (VM id, uuid or name)")
    .action(async (vm: string) => {
      const cfg = config();
      const { exportKey } = await import('../backups/key-export.js');
      const db = openDatabase(cfg.database);
      try {
        const k = await exportKey(db, cfg.dataDir, vm);
        if (k.passphrase === null) {
          process.stderr.write(`backroll: VM ${k.vm.name} (${k.vm.uuid}) has no repository passphrase: its repository is unencrypted or was never created encrypted (${k.file})\n`);
          process.exit(1);
        }
        process.stderr.write(
          `WARNING: this passphrase decrypts every backup of VM ${JSON.stringify(k.vm.name)} (uuid ${k.vm.uuid}).\n` +
            '  Store it somewhere safe OUTSIDE this server (a password manager, a safe): without it, and if the\n' +
            `  data dir is lost, the backups cannot be restored. Anyone holding it and the repository can read them.\n`,
        );
        out(k.passphrase);
      } catch (err) {
        process.stderr.write(`backroll: ${(err as Error).message}\n`);
        process.exit(1);
      } finally {
        await db.destroy();
      }
    });

  registerDrCommands(program, config);
  (await import('./repair-commands.js')).registerRepairCommands(program, config);
  (await import('./import-commands.js')).registerImportCommands(program, config);
  registerClientCommands(program);
  await program.parseAsync(argv);
}
