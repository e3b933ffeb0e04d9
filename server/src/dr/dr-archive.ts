/**
 * The disaster-recovery file: Backroll's database resources and the data dir's keys in
 * one archive, encrypted with a passphrase the operator chooses.
 *
 *   BACKROLL-DR 1\n                     magic and format version
 *   {"kdf":"scrypt",…,"iv":"…"}\n        header: KDF parameters, salt, IV (authenticated)
 *   <AES-256-GCM ciphertext><16-byte tag> of gzip(JSON payload)
 *
 * The key is scrypt(passphrase, salt); the magic line and the header are the GCM
 * additional data, so changing any byte of the file fails the tag check. Nothing is
 * parsed from the payload before the tag has been verified, and the KDF parameters a
 * (possibly tampered) header asks for are bounded before any work is done.
 */
import { createCipheriv, createDecipheriv, randomBytes, scrypt as scryptCb, type ScryptOptions } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { invalid } from '../errors.js';

const MAGIC = 'BACKROLL-DR 1\n';
const TAG_BYTES = 16;
/** scrypt N=2^15, r=8, p=1: 32 MiB and about 0.1 s per derivation here. */
const DEFAULT_KDF = { N: 2 ** 15, r: 8, p: 1 };
const MAX_LOG2_N = 20;
const MAX_HEADER_BYTES = 4096;
export const MIN_PASSPHRASE_LENGTH = 12;

interface Header {
  kdf: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
  cipher: 'aes-256-gcm';
  iv: string;
  createdAt: string;
}

function scrypt(passphrase: string, salt: Buffer, o: { N: number; r: number; p: number }): Promise<Buffer> {
  const opts: ScryptOptions = { N: o.N, r: o.r, p: o.p, maxmem: 256 * o.N * o.r + 1024 * 1024 };
  return new Promise((resolve, reject) => scryptCb(passphrase.normalize('NFC'), salt, 32, opts, (err, key) => (err ? reject(err) : resolve(key))));
}

export function checkPassphrase(passphrase: string): void {
  if (typeof passphrase !== 'string' || [...passphrase].length < MIN_PASSPHRASE_LENGTH) {
    throw invalid('DR.PASSPHRASE_WEAK', `the disaster-recovery passphrase must have at least ${MIN_PASSPHRASE_LENGTH} characters; keep it outside this server`);
  }
}

/** Encrypts `payload` (any JSON value) into a DR file. */
export async function sealDrArchive(payload: unknown, passphrase: string, now: Date = new Date(), kdf = DEFAULT_KDF): Promise<Buffer> {
  checkPassphrase(passphrase);
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const header: Header = { kdf: 'scrypt', ...kdf, salt: salt.toString('base64'), cipher: 'aes-256-gcm', iv: iv.toString('base64'), createdAt: now.toISOString() };
  const head = Buffer.from(`${MAGIC}${JSON.stringify(header)}\n`, 'utf8');
  const key = await scrypt(passphrase, salt, kdf);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(head);
  const body = Buffer.concat([cipher.update(gzipSync(Buffer.from(JSON.stringify(payload), 'utf8'))), cipher.final(), cipher.getAuthTag()]);
  return Buffer.concat([head, body]);
}

const notDr = () => invalid('DR.FILE_INVALID', 'this is not a Backroll disaster-recovery file (or it is truncated)');

function parseHeader(file: Buffer): { header: Header; headLength: number } {
  if (file.length < MAGIC.length || file.subarray(0, MAGIC.length).toString('latin1') !== MAGIC) throw notDr();
  const end = file.indexOf(0x0a, MAGIC.length);
  if (end < 0 || end - MAGIC.length > MAX_HEADER_BYTES) throw notDr();
  let header: Header;
  try {
    header = JSON.parse(file.subarray(MAGIC.length, end).toString('utf8')) as Header;
  } catch {
    throw notDr();
  }
  const pow2 = Number.isInteger(Math.log2(header.N)) && header.N >= 2 ** 14 && header.N <= 2 ** MAX_LOG2_N;
  if (header.kdf !== 'scrypt' || header.cipher !== 'aes-256-gcm' || !pow2 || !(header.r >= 1 && header.r <= 16) || !(header.p >= 1 && header.p <= 4)) {
    throw invalid('DR.FILE_TAMPERED', 'the disaster-recovery file was modified or damaged (its header is not one Backroll writes): nothing was imported');
  }
  return { header, headLength: end + 1 };
}

/** Decrypts and authenticates a DR file; a wrong passphrase and a modified file are both refused. */
export async function openDrArchive(file: Buffer, passphrase: string): Promise<unknown> {
  const { header, headLength } = parseHeader(file);
  if (file.length < headLength + TAG_BYTES) throw notDr();
  const key = await scrypt(passphrase, Buffer.from(header.salt, 'base64'), header);
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(header.iv, 'base64'));
  decipher.setAAD(file.subarray(0, headLength));
  decipher.setAuthTag(file.subarray(file.length - TAG_BYTES));
  let plain: Buffer;
  try {
    plain = Buffer.concat([decipher.update(file.subarray(headLength, file.length - TAG_BYTES)), decipher.final()]);
  } catch {
    throw invalid(
      'DR.DECRYPT_FAILED',
      'the disaster-recovery file could not be decrypted: the passphrase is wrong, or the file was modified or damaged; nothing was imported',
    );
  }
  return JSON.parse(gunzipSync(plain).toString('utf8'));
}

/** When a DR file was written, read from its header without the passphrase. */
export function drArchiveCreatedAt(file: Buffer): string {
  return parseHeader(file).header.createdAt;
}
