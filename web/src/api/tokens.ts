/**
 * Where the access/refresh token pair lives. localStorage so a reload or a second tab stays
 * signed in; the refresh token rotates on every use, so whoever refreshes writes the new pair
 * here and other tabs pick it up on their next request.
 */
export interface TokenPair {
  access_token: string;
  refresh_token: string;
  /** Epoch milliseconds when the access token stops working (informational). */
  expires_at: number;
}

export interface TokenStore {
  get(): TokenPair | null;
  set(pair: TokenPair | null): void;
}

const KEY = 'wamage.auth';

export const localTokenStore: TokenStore = {
  get() {
    try {
      const raw = window.localStorage.getItem(KEY);
      if (!raw) return null;
      const v = JSON.parse(raw) as Partial<TokenPair>;
      if (typeof v.access_token !== 'string' || typeof v.refresh_token !== 'string') return null;
      return { access_token: v.access_token, refresh_token: v.refresh_token, expires_at: v.expires_at ?? 0 };
    } catch {
      return null;
    }
  },
  set(pair) {
    if (pair) window.localStorage.setItem(KEY, JSON.stringify(pair));
    else window.localStorage.removeItem(KEY);
  },
};

export function memoryTokenStore(initial: TokenPair | null = null): TokenStore {
  let pair = initial;
  return {
    get: () => pair,
    set: (p) => {
      pair = p;
    },
  };
}

/** Turns the `expires_in` (seconds) of an auth response into a stored pair. */
export function pairFrom(
  auth: { access_token: string; refresh_token: string; expires_in: number },
  now = Date.now(),
): TokenPair {
  return {
    access_token: auth.access_token,
    refresh_token: auth.refresh_token,
    expires_at: now + auth.expires_in * 1000,
  };
}
