import { useForm } from '@mantine/form';
import { act, renderHook } from '@testing-library/react';
import { describe, expect, it } from 'vitest';

import { ApiError } from '../api/problem';
import { applyApiError } from './forms';

function setup() {
  return renderHook(() => useForm({ mode: 'controlled', initialValues: { email: '', password: '' } })).result;
}

const problem = (init: Partial<ConstructorParameters<typeof ApiError>[0]>) =>
  new ApiError({ status: 422, code: 'validation_failed', title: 'The request has invalid fields', ...init });

describe('applyApiError', () => {
  it('puts every matching field error under its input and leaves nothing for the alert', () => {
    const form = setup();
    let rest: string | null = 'unset';
    act(() => {
      rest = applyApiError(form.current, problem({ errors: [{ field: 'email', message: 'is taken' }] }));
    });
    expect(form.current.errors).toEqual({ email: 'is taken' });
    expect(rest).toBeNull();
  });

  it('reports the errors that match no input in the alert text', () => {
    const form = setup();
    let rest: string | null = null;
    act(() => {
      rest = applyApiError(
        form.current,
        problem({
          errors: [
            { field: 'password', message: 'too short' },
            { field: 'token', message: 'expired' },
          ],
        }),
      );
    });
    expect(form.current.errors).toEqual({ password: 'too short' });
    expect(rest).toBe('The request has invalid fields (token: expired)');
  });

  it('maps a bare problem code to a field', () => {
    const form = setup();
    act(() => {
      applyApiError(form.current, problem({ status: 409, code: 'email_taken', title: 'E-mail taken' }), {
        codes: { email_taken: 'email' },
      });
    });
    expect(form.current.errors).toEqual({ email: 'E-mail taken' });
  });

  it('turns anything else into a message', () => {
    const form = setup();
    let rest: string | null = null;
    act(() => {
      rest = applyApiError(form.current, new TypeError('Failed to fetch'));
    });
    expect(rest).toBe('Check your connection and try again.');
    expect(form.current.errors).toEqual({});
  });
});
