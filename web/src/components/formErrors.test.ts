import { describe, expect, it } from 'vitest';
import { ApiError } from '../api/client';
import { fieldKey, useFormErrors } from './formErrors';

describe('form errors from problem+json', () => {
  it('maps error paths onto field keys', () => {
    expect(fieldKey('body/retention/daily')).toBe('retention.daily');
    expect(fieldKey('body/name')).toBe('name');
    expect(fieldKey('querystring/limit')).toBe('limit');
    expect(fieldKey('body')).toBe('');
  });

  it('puts field errors on their fields, name clashes on the name, the rest in the general message', () => {
    const errs = useFormErrors();
    errs.set(new ApiError({ status: 400, code: 'REQUEST.INVALID', detail: 'invalid body', errors: [{ path: 'body/retention/daily', message: 'must be >= 0' }, { path: 'body/name', message: 'too short' }] }));
    expect(errs.feedback('retention.daily')).toBe('must be >= 0');
    expect(errs.status('name')).toBe('error');
    expect(errs.state.general).toBe('');

    errs.set(new ApiError({ status: 409, code: 'POLICY.NAME_TAKEN', detail: 'a policy named nightly exists' }));
    expect(errs.feedback('name')).toBe('a policy named nightly exists');
    expect(errs.feedback('retention.daily')).toBeUndefined();

    errs.set(new ApiError({ status: 400, code: 'STORAGE.PATH_NOT_FOUND', detail: 'storage path /x does not exist' }), { 'STORAGE.PATH_NOT_FOUND': 'path' });
    expect(errs.feedback('path')).toBe('storage path /x does not exist');

    errs.set(new ApiError({ status: 503, code: 'HOST.UNREACHABLE', detail: 'kvm1 does not answer' }));
    expect(errs.state.general).toBe('kvm1 does not answer');
    expect(errs.state.code).toBe('HOST.UNREACHABLE');
    errs.clear();
    expect(errs.hasErrors.value).toBe(false);
  });
});
