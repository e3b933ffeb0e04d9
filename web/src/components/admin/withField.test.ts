import { describe, expect, it } from 'vitest';
import { ApiError } from '../../api/client';
import { useFormErrors } from '../formErrors';
import { withField } from './withField';

describe('withField', () => {
  it("puts a service problem on the field the server names", () => {
    const err = new ApiError({ status: 400, code: 'POLICY.RETENTION_INVALID', detail: 'retention keeps nothing', field: 'retention' });
    const errs = useFormErrors();
    errs.set(err, withField(err, { 'POLICY.NAME_TAKEN': 'name' }));
    expect(errs.feedback('retention')).toBe('retention keeps nothing');
    expect(errs.state.general).toBe('');
  });
  it('keeps an explicit mapping and leaves problems without a field alone', () => {
    const named = new ApiError({ status: 400, code: 'X.Y', detail: 'd', field: 'other' });
    expect(withField(named, { 'X.Y': 'mine' })).toEqual({ 'X.Y': 'mine' });
    const plain = new ApiError({ status: 409, code: 'POLICY.IN_USE', detail: 'used by pool prod' });
    const errs = useFormErrors();
    errs.set(plain, withField(plain));
    expect(errs.state.general).toBe('used by pool prod');
    expect(withField(new Error('x'), { a: 'b' })).toEqual({ a: 'b' });
  });
});
