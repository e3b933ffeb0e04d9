/** `backroll key export <vm>`: the passphrase of a VM's encrypted repository, for safekeeping. */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Db } from '../db/database.js';
import { AppError } from '../errors.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export interface ExportedKey {
  vm: { id: string; uuid: string; name: string };
  /** null: the VM has no passphrase (unencrypted repository, or never backed up encrypted). */
  passphrase: string | null;
  file: string;
}

/** `vm` is a Backroll VM id, a libvirt uuid or a VM name (refused when several VMs share it). */
export async function exportKey(db: Db, dataDir: string, vm: string): Promise<ExportedKey> {
  let q = db.selectFrom('virtual_machines').select(['id', 'uuid', 'name']);
  q = UUID.test(vm) ? q.where((eb) => eb.or([eb('id', '=', vm), eb('uuid', '=', vm.toLowerCase())])) : q.where('name', '=', vm);
  const rows = await q.execute();
  if (rows.length === 0) throw new AppError('not_found', 'VM.NOT_FOUND', `no virtual machine ${JSON.stringify(vm)}`);
  const uuids = new Set(rows.map((r) => r.uuid.toLowerCase()));
  if (uuids.size > 1) throw new AppError('conflict', 'VM.AMBIGUOUS', `several VMs are named ${JSON.stringify(vm)}: give the VM id (${rows.map((r) => r.id).join(', ')})`);
  const row = rows[0]!;
  const file = path.join(dataDir, 'borg-passphrases', row.uuid.toLowerCase());
  const passphrase = await fs.readFile(file, 'utf8').then((s) => s.trim(), () => null);
  return { vm: row, passphrase, file };
}
