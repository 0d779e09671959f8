import { describe, expect, it } from 'vitest';

import { ApiError, networkError, normalizeField, problemFromResponse } from './problem';

const res = (status: number, headers: Record<string, string> = {}) => new Response(null, { status, headers });

describe('problemFromResponse', () => {
  it('reads an RFC 9457 body with field errors', () => {
    const err = problemFromResponse(res(422, { 'X-Request-Id': 'hdr-id' }), {
      type: 'https://wamage.dev/problems/validation_failed',
      title: 'Validation failed',
      status: 422,
      code: 'validation_failed',
      detail: 'Some fields are invalid',
      errors: [
        { field: 'password', message: 'must be at least 10 characters' },
        { field: 'email', message: 'is not an email' },
        { field: 'email', message: 'second message is ignored' },
        { nonsense: true },
      ],
      request_id: 'req-1',
    });
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(422);
    expect(err.code).toBe('validation_failed');
    expect(err.title).toBe('Validation failed');
    expect(err.detail).toBe('Some fields are invalid');
    expect(err.requestId).toBe('req-1');
    expect(err.errors).toHaveLength(3);
    expect(err.fieldErrors()).toEqual({ password: 'must be at least 10 characters', email: 'is not an email' });
    expect(err.userMessage).toBe('Some fields are invalid');
  });

  it('falls back to the status when the body is not a problem', () => {
    const err = problemFromResponse(res(502), '<html>Bad gateway</html>');
    expect(err.code).toBe('bad_gateway');
    expect(err.title).toBe('The server is unreachable');
    expect(err.detail).toBeUndefined();
    expect(err.errors).toEqual([]);
  });

  it('keeps a short plain-text body as the detail', () => {
    const err = problemFromResponse(res(400), 'missing field `email`');
    expect(err.code).toBe('bad_request');
    expect(err.userMessage).toBe('missing field `email`');
  });

  it('reads Retry-After of a 429 and says when to retry', () => {
    const err = problemFromResponse(res(429, { 'Retry-After': '7' }), {
      type: 'about:blank',
      title: 'Too many requests',
      status: 429,
      code: 'rate_limited',
    });
    expect(err.retryAfter).toBe(7);
    expect(err.userMessage).toBe('Too many attempts. Try again in 7 s.');
  });

  it('takes the problem status over the HTTP one when both exist', () => {
    const err = problemFromResponse(res(400), { status: 409, code: 'email_taken', title: 'Email taken' });
    expect(err.status).toBe(409);
    expect(err.code).toBe('email_taken');
  });
});

describe('normalizeField', () => {
  it.each([
    ['password', 'password'],
    ['/password', 'password'],
    ['/organization/name', 'organization.name'],
    ['body.email', 'email'],
  ])('%s → %s', (input, out) => expect(normalizeField(input)).toBe(out));
});

it('networkError is an ApiError with status 0', () => {
  const err = networkError(new TypeError('Failed to fetch'));
  expect(err.status).toBe(0);
  expect(err.code).toBe('network_error');
});
