import { randomBytes } from 'node:crypto';
import type { SecretBox } from '../crypto/secret-box.js';
import { conflict, invalid } from '../errors.js';
import { IDP_ROLES, type IdpRole } from './accounts.js';
import { ensureIdpDir, idpPaths, readJson, withFileLock, writeFileAtomic } from './files.js';

/** A machine client (client credentials grant) as stored in `<dataDir>/idp/clients.json`. */
export interface MachineClientRecord {
  clientId: string;
  name: string;
  role: IdpRole;
  /** The client secret sealed with the data dir's SecretBox; never plaintext at rest. */
  secret: string;
  createdAt: string;
}

export interface MachineClientInfo {
  clientId: string;
  name: string;
  role: IdpRole;
  createdAt: string;
}

interface ClientsFile {
  version: 1;
  clients: MachineClientRecord[];
}

const MAX_NAME = 64;

export function readMachineClients(dataDir: string): MachineClientRecord[] {
  const file = idpPaths(dataDir).clients;
  const raw = readJson(file) as Partial<ClientsFile> | undefined;
  if (raw === undefined) return [];
  if (!Array.isArray(raw.clients)) throw new Error(`${file} has no "clients" list; restore it from a backup`);
  return raw.clients.filter(
    (c): c is MachineClientRecord =>
      typeof c?.clientId === 'string' && typeof c.secret === 'string' && (IDP_ROLES as readonly string[]).includes(c.role),
  );
}

export function findMachineClient(dataDir: string, clientId: string): MachineClientRecord | undefined {
  return readMachineClients(dataDir).find((c) => c.clientId === clientId);
}

function updateClients<T>(dataDir: string, fn: (clients: MachineClientRecord[]) => T): T {
  const paths = ensureIdpDir(dataDir);
  return withFileLock(paths.clients, () => {
    const clients = readMachineClients(dataDir);
    const result = fn(clients);
    const file: ClientsFile = { version: 1, clients };
    writeFileAtomic(paths.clients, JSON.stringify(file, null, 2) + '\n');
    return result;
  });
}

function slug(name: string): string {
  const s = name
    .normalize('NFKD')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 40)
    .replace(/-+$/, '');
  return s || 'client';
}

/**
 * Creates a machine client for the client credentials grant. The secret (32 random
 * bytes) is returned once and stored only sealed by `secretBox`. A running server
 * sees the client on its next token request.
 */
export function createMachineClient(
  dataDir: string,
  secretBox: SecretBox,
  name: string,
  role: IdpRole,
): { clientId: string; clientSecret: string; name: string; role: string } {
  const label = typeof name === 'string' ? name.trim() : '';
  if (label === '' || label.length > MAX_NAME || /[\u0000-\u001f\u007f]/.test(label)) {
    throw invalid('IDP.CLIENT_NAME_INVALID', `a client name must be 1 to ${MAX_NAME} printable characters`, { name });
  }
  if (!(IDP_ROLES as readonly string[]).includes(role)) {
    throw invalid('IDP.CLIENT_ROLE_INVALID', `a client role must be one of ${IDP_ROLES.join(', ')}`, { role });
  }
  const clientSecret = randomBytes(32).toString('base64url');
  const sealed = secretBox.encrypt(clientSecret);
  return updateClients(dataDir, (clients) => {
    if (clients.some((c) => c.name.toLowerCase() === label.toLowerCase())) {
      throw conflict('IDP.CLIENT_EXISTS', `a client named "${label}" already exists; delete it first or pick another name`, { name: label });
    }
    let clientId: string;
    do clientId = `${slug(label)}-${randomBytes(4).toString('hex')}`;
    while (clients.some((c) => c.clientId === clientId));
    clients.push({ clientId, name: label, role, secret: sealed, createdAt: new Date().toISOString() });
    return { clientId, clientSecret, name: label, role };
  });
}

/** Machine clients without their secrets. */
export function listMachineClients(dataDir: string): MachineClientInfo[] {
  return readMachineClients(dataDir).map(({ clientId, name, role, createdAt }) => ({ clientId, name, role, createdAt }));
}

/** Deletes a machine client; the API refuses its tokens within a few seconds (auth/client-check.ts). */
export function deleteMachineClient(dataDir: string, clientId: string): boolean {
  if (findMachineClient(dataDir, clientId) === undefined) return false;
  return updateClients(dataDir, (clients) => {
    const i = clients.findIndex((c) => c.clientId === clientId);
    if (i < 0) return false;
    clients.splice(i, 1);
    return true;
  });
}
