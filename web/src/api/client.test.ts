import { describe, expect, it, vi } from 'vitest';

import { createApi, unwrap } from './client';
import { ApiError } from './problem';
import { memoryTokenStore } from './tokens';

const BASE = 'http://app.test';

function json(status: number, body: unknown, type = 'application/json') {
  return new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { 'Content-Type': type } });
}

const problem401 = { type: 'about:blank', title: 'Unauthorized', status: 401, code: 'unauthorized' };

function authOut(n: number) {
  return {
    access_token: `access-${n}`,
    refresh_token: `refresh-${n}`,
    token_type: 'Bearer',
    expires_in: 900,
    user: {
      id: 'u1',
      email: 'a@b.c',
      name: 'A',
      avatar_url: null,
      status_text: null,
      created_at: '2026-01-01T00:00:00Z',
    },
    organization: { id: 'o1', name: 'Org', created_at: '2026-01-01T00:00:00Z' },
    role: 'owner',
  };
}

const me = { user: authOut(0).user, organization: authOut(0).organization, role: 'owner' };

/** A fake server: `/me` accepts only `validAccess`; `/auth/refresh` rotates when given `validRefresh`. */
function fakeServer(opts: { refreshOk?: boolean; delayRefresh?: number } = {}) {
  const state = { validAccess: 'access-1', validRefresh: 'refresh-0', refreshCalls: 0, generation: 1 };
  const seen: { path: string; auth: string | null; body: string }[] = [];
  const fetch = vi.fn(async (req: Request) => {
    const path = new URL(req.url).pathname;
    const body = req.method === 'GET' ? '' : await req.text();
    const auth = req.headers.get('Authorization');
    seen.push({ path, auth, body });
    if (path === '/api/v1/auth/refresh') {
      state.refreshCalls++;
      if (opts.delayRefresh) await new Promise((r) => setTimeout(r, opts.delayRefresh));
      const { refresh_token } = JSON.parse(body) as { refresh_token: string };
      if (opts.refreshOk === false || refresh_token !== state.validRefresh) {
        return json(401, problem401, 'application/problem+json');
      }
      state.generation++;
      const out = authOut(state.generation);
      state.validAccess = out.access_token;
      state.validRefresh = out.refresh_token;
      return json(200, out);
    }
    if (auth !== `Bearer ${state.validAccess}`) return json(401, problem401, 'application/problem+json');
    if (path === '/api/v1/me') return json(200, me);
    if (path === '/api/v1/me/password') return new Response(null, { status: 204 });
    return json(
      404,
      { title: 'Not found', status: 404, code: 'not_found', type: 'about:blank' },
      'application/problem+json',
    );
  });
  return { fetch, state, seen };
}

describe('api client', () => {
  it('attaches the bearer token', async () => {
    const server = fakeServer();
    const tokens = memoryTokenStore({ access_token: 'access-1', refresh_token: 'refresh-0', expires_at: 0 });
    const api = createApi({ baseUrl: BASE, tokens, fetch: server.fetch });
    const data = await unwrap(api.client.GET('/api/v1/me'));
    expect(data.user.email).toBe('a@b.c');
    expect(server.seen[0]?.auth).toBe('Bearer access-1');
    expect(server.state.refreshCalls).toBe(0);
  });

  it('refreshes once on 401, stores the rotated pair and replays the request with its body', async () => {
    const server = fakeServer();
    server.state.validAccess = 'access-1';
    const tokens = memoryTokenStore({ access_token: 'expired', refresh_token: 'refresh-0', expires_at: 0 });
    const onAuthFailure = vi.fn();
    const api = createApi({ baseUrl: BASE, tokens, fetch: server.fetch, onAuthFailure });

    await unwrap(
      api.client.POST('/api/v1/me/password', {
        body: { current_password: 'old-password', new_password: 'new-password-1' },
      }),
    );

    expect(server.state.refreshCalls).toBe(1);
    expect(server.seen.map((s) => s.path)).toEqual([
      '/api/v1/me/password',
      '/api/v1/auth/refresh',
      '/api/v1/me/password',
    ]);
    expect(server.seen[2]?.auth).toBe('Bearer access-2');
    expect(server.seen[2]?.body).toBe(server.seen[0]?.body);
    expect(JSON.parse(server.seen[1]?.body ?? '')).toEqual({ refresh_token: 'refresh-0' });
    expect(tokens.get()).toMatchObject({ access_token: 'access-2', refresh_token: 'refresh-2' });
    expect(onAuthFailure).not.toHaveBeenCalled();
  });

  it('shares one refresh between concurrent 401s (the refresh token rotates)', async () => {
    const server = fakeServer({ delayRefresh: 20 });
    const tokens = memoryTokenStore({ access_token: 'expired', refresh_token: 'refresh-0', expires_at: 0 });
    const api = createApi({ baseUrl: BASE, tokens, fetch: server.fetch });

    const results = await Promise.all([1, 2, 3].map(() => unwrap(api.client.GET('/api/v1/me'))));

    expect(results).toHaveLength(3);
    expect(server.state.refreshCalls).toBe(1);
    expect(tokens.get()?.refresh_token).toBe('refresh-2');
  });

  it('does not refresh a second time when the replay is also refused', async () => {
    const server = fakeServer();
    // The server accepts nothing: even a fresh token gets 401.
    server.fetch.mockImplementation(async (req: Request) => {
      const path = new URL(req.url).pathname;
      server.seen.push({ path, auth: req.headers.get('Authorization'), body: '' });
      if (path === '/api/v1/auth/refresh') {
        server.state.refreshCalls++;
        return json(200, authOut(9));
      }
      return json(401, problem401, 'application/problem+json');
    });
    const tokens = memoryTokenStore({ access_token: 'a', refresh_token: 'r', expires_at: 0 });
    const api = createApi({ baseUrl: BASE, tokens, fetch: server.fetch });

    const err = await unwrap(api.client.GET('/api/v1/me')).catch((e: unknown) => e);

    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).code).toBe('unauthorized');
    expect(server.state.refreshCalls).toBe(1);
    expect(server.seen.filter((s) => s.path === '/api/v1/me')).toHaveLength(2);
  });

  it('forgets the tokens and reports auth failure when the refresh is refused', async () => {
    const server = fakeServer({ refreshOk: false });
    const tokens = memoryTokenStore({ access_token: 'expired', refresh_token: 'dead', expires_at: 0 });
    const onAuthFailure = vi.fn();
    const api = createApi({ baseUrl: BASE, tokens, fetch: server.fetch, onAuthFailure });

    const err = await unwrap(api.client.GET('/api/v1/me')).catch((e: unknown) => e);

    expect((err as ApiError).status).toBe(401);
    expect(tokens.get()).toBeNull();
    expect(onAuthFailure).toHaveBeenCalledTimes(1);
    expect(server.state.refreshCalls).toBe(1);
  });

  it('replays with a pair another tab stored meanwhile instead of refreshing', async () => {
    const server = fakeServer();
    const tokens = memoryTokenStore({ access_token: 'old', refresh_token: 'refresh-old', expires_at: 0 });
    const realFetch = server.fetch.getMockImplementation()!;
    let first = true;
    server.fetch.mockImplementation(async (req: Request) => {
      if (first) {
        first = false;
        // While this request is in flight, another tab rotates the pair.
        tokens.set({ access_token: 'access-1', refresh_token: 'refresh-0', expires_at: 0 });
      }
      return realFetch(req);
    });
    const api = createApi({ baseUrl: BASE, tokens, fetch: server.fetch });

    await unwrap(api.client.GET('/api/v1/me'));

    expect(server.state.refreshCalls).toBe(0);
    expect(server.seen.map((s) => s.auth)).toEqual(['Bearer old', 'Bearer access-1']);
  });

  it('never refreshes on a failed login (401 there means wrong credentials)', async () => {
    const fetch = vi.fn(async () =>
      json(
        401,
        { type: 'about:blank', title: 'Invalid email or password', status: 401, code: 'invalid_credentials' },
        'application/problem+json',
      ),
    );
    const tokens = memoryTokenStore({ access_token: 'a', refresh_token: 'r', expires_at: 0 });
    const api = createApi({ baseUrl: BASE, tokens, fetch });

    const err = await unwrap(
      api.client.POST('/api/v1/auth/login', { body: { email: 'x@y.z', password: 'nope' } }),
    ).catch((e: unknown) => e);

    expect((err as ApiError).code).toBe('invalid_credentials');
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(tokens.get()).not.toBeNull();
  });

  it('turns a problem+json error into an ApiError with field errors', async () => {
    const fetch = vi.fn(async () =>
      json(
        422,
        {
          type: 'about:blank',
          title: 'Validation failed',
          status: 422,
          code: 'validation_failed',
          errors: [{ field: 'password', message: 'too short' }],
        },
        'application/problem+json',
      ),
    );
    const api = createApi({ baseUrl: BASE, tokens: memoryTokenStore(), fetch });
    const err = (await unwrap(
      api.client.POST('/api/v1/auth/register', {
        body: { email: 'a@b.c', password: 'x', name: 'A', organization: 'O' },
      }),
    ).catch((e: unknown) => e)) as ApiError;
    expect(err).toBeInstanceOf(ApiError);
    expect(err.fieldErrors()).toEqual({ password: 'too short' });
    // No token: no Authorization header is sent.
    const sent = fetch.mock.calls[0] as unknown as [Request];
    expect(sent[0].headers.get('Authorization')).toBeNull();
  });

  it('turns a network failure into a network_error ApiError', async () => {
    const api = createApi({
      baseUrl: BASE,
      tokens: memoryTokenStore(),
      fetch: async () => {
        throw new TypeError('Failed to fetch');
      },
    });
    const err = (await unwrap(api.client.GET('/api/v1/me')).catch((e: unknown) => e)) as ApiError;
    expect(err.code).toBe('network_error');
  });
});
