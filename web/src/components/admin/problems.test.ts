import { describe, expect, it } from 'vitest';
import { fieldErrors, messageOf, problemOf } from './problems';

const validation = {
  status: 400,
  code: 'REQUEST.INVALID',
  detail: 'the request is invalid: …',
  errors: [
    { path: 'body/name', message: 'must NOT have fewer than 1 characters' },
    { path: 'body/retention/daily', message: 'must be <= 10000' },
    { path: 'body/bogus', message: 'unknown property' },
  ],
};

describe('fieldErrors', () => {
  it('puts validation errors on the deepest field the form has', () => {
    expect(fieldErrors({ problem: validation }, ['name', 'retention.daily', 'retention'])).toEqual({
      fields: { name: 'must NOT have fewer than 1 characters', 'retention.daily': 'must be <= 10000' },
      general: 'bogus: unknown property',
    });
    expect(fieldErrors({ problem: validation }, ['name', 'retention']).fields).toEqual({
      name: 'must NOT have fewer than 1 characters',
      retention: 'must be <= 10000',
    });
  });
  it('puts a service error on the field its code names', () => {
    const p = (code: string) => ({ problem: { status: 400, code, detail: `detail of ${code}` } });
    expect(fieldErrors(p('STORAGE.PATH_NOT_WRITABLE'), ['name', 'path']).fields).toEqual({ path: 'detail of STORAGE.PATH_NOT_WRITABLE' });
    expect(fieldErrors(p('POLICY.NAME_TAKEN'), ['name', 'schedule']).fields).toEqual({ name: 'detail of POLICY.NAME_TAKEN' });
    expect(fieldErrors(p('POLICY.STORAGE_NOT_FOUND'), ['name', 'storageId']).fields).toEqual({ storageId: 'detail of POLICY.STORAGE_NOT_FOUND' });
    expect(fieldErrors(p('POLICY.INVALID_SCHEDULE'), ['schedule', 'timezone']).fields).toEqual({ schedule: 'detail of POLICY.INVALID_SCHEDULE' });
    expect(fieldErrors(p('HOST.LIBVIRT_URI_INVALID'), ['address', 'libvirtUri']).fields).toEqual({ libvirtUri: 'detail of HOST.LIBVIRT_URI_INVALID' });
    expect(fieldErrors(p('POLICY.IN_USE'), ['name'])).toEqual({ fields: {}, general: 'detail of POLICY.IN_USE' });
  });
  it('gives the message of anything else as general', () => {
    expect(fieldErrors(new Error('network down'), ['name'])).toEqual({ fields: {}, general: 'network down' });
  });
});

describe('problemOf / messageOf', () => {
  it('reads a problem from the error or the error itself', () => {
    expect(problemOf({ problem: validation })).toBe(validation);
    expect(problemOf(validation)).toBe(validation);
    expect(problemOf(new Error('x'))).toBeNull();
    expect(messageOf({ problem: { code: 'X.Y', detail: 'do this' } })).toBe('do this');
    expect(messageOf('plain')).toBe('plain');
  });
});
