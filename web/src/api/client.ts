/**
 * The typed API client: openapi-fetch over a fetch wrapper that
 *  - attaches `Authorization: Bearer <access token>`;
 *  - on a 401, refreshes the pair once with the refresh token and replays the request once.
 *    Refresh tokens rotate (the old one dies on use), so concurrent 401s share a single refresh
 *    call, and a request that failed with an access token that has since been replaced (another
 *    request or tab refreshed) is simply replayed with the current one;
 *  - when the refresh itself is refused, forgets the pair and calls `onAuthFailure` (→ /login).
 * `unwrap` turns openapi-fetch's `{data, error, response}` into data-or-`ApiError`.
 */
import createClient from 'openapi-fetch';

import { ApiError, networkError, problemFromResponse } from './problem';
import type { paths } from './schema';
import { localTokenStore, pairFrom, type TokenPair, type TokenStore } from './tokens';

export type ApiClient = ReturnType<typeof createClient<paths>>;

export interface ApiOptions {
  baseUrl: string;
  tokens: TokenStore;
  fetch?: (request: Request) => Promise<Response>;
  /** Called once the session is definitely gone (refresh refused). */
  onAuthFailure?: () => void;
}

/**
 * Endpoints where a 401 means "wrong credentials/token", not "access token expired". (Logout is
 * not one: with an expired access token we refresh first, so the server really ends the session.)
 */
const NO_REFRESH = /\/api\/v1\/auth\/(login|register|refresh|password\/|invitations\/)/;

export interface Api {
  client: ApiClient;
  tokens: TokenStore;
  /** Exposed for tests: refresh now, sharing any refresh in flight. */
  refresh(): Promise<TokenPair | null>;
}

export function createApi(opts: ApiOptions): Api {
  const baseFetch = opts.fetch ?? ((r: Request) => globalThis.fetch(r));
  const { tokens } = opts;
  let inFlight: Promise<TokenPair | null> | null = null;

  async function doRefresh(): Promise<TokenPair | null> {
    const current = tokens.get();
    if (!current) return null;
    let res: Response;
    try {
      res = await baseFetch(
        new Request(`${opts.baseUrl}/api/v1/auth/refresh`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
          body: JSON.stringify({ refresh_token: current.refresh_token }),
        }),
      );
    } catch {
      // Offline: keep the pair, the next request may work.
      return null;
    }
    if (!res.ok) {
      // Only forget the pair if nobody rotated it meanwhile (e.g. another tab).
      if (tokens.get()?.refresh_token === current.refresh_token) {
        tokens.set(null);
        opts.onAuthFailure?.();
      }
      return null;
    }
    const body = (await res.json()) as { access_token: string; refresh_token: string; expires_in: number };
    const pair = pairFrom(body);
    tokens.set(pair);
    return pair;
  }

  function refresh(): Promise<TokenPair | null> {
    if (!inFlight) {
      inFlight = doRefresh().finally(() => {
        inFlight = null;
      });
    }
    return inFlight;
  }

  function withBearer(req: Request, token: string | undefined): Request {
    if (token && !req.headers.has('Authorization')) req.headers.set('Authorization', `Bearer ${token}`);
    return req;
  }

  async function authFetch(request: Request): Promise<Response> {
    const used = tokens.get();
    const canRetry = !!used && !NO_REFRESH.test(new URL(request.url, 'http://x').pathname);
    // Bodies are streams: keep an untouched copy for the single replay.
    const replay = canRetry ? request.clone() : null;
    const res = await baseFetch(withBearer(request, used?.access_token));
    if (res.status !== 401 || !replay || !used) return res;

    const latest = tokens.get();
    const next = latest && latest.access_token !== used.access_token ? latest : await refresh();
    // No pair: the refresh was refused (doRefresh already reported it) or we are offline.
    if (!next) return res;
    return baseFetch(withBearer(replay, next.access_token));
  }

  const client = createClient<paths>({ baseUrl: opts.baseUrl, fetch: authFetch });
  return { client, tokens, refresh };
}

type Result<D> = { data?: D; error?: unknown; response: Response };

/** Awaits an openapi-fetch call and returns its data, or throws an `ApiError`. */
export async function unwrap<D>(call: Promise<Result<D>>): Promise<D> {
  let r: Result<D>;
  try {
    r = await call;
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw networkError(e);
  }
  if (!r.response.ok) throw problemFromResponse(r.response, r.error);
  return r.data as D;
}

// ---- the app-wide instance ------------------------------------------------------------------

let authFailureHandler: () => void = () => {
  window.location.assign('/login');
};

/** The router registers a softer handler (client-side navigation) once it exists. */
export function setAuthFailureHandler(fn: () => void): void {
  authFailureHandler = fn;
}

export const api = createApi({
  baseUrl: typeof window !== 'undefined' ? window.location.origin : 'http://localhost',
  tokens: localTokenStore,
  onAuthFailure: () => authFailureHandler(),
});

export const client = api.client;
