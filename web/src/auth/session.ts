/** Signing in and out: the token pair in storage plus the cached `/me`. */
import type { QueryClient } from '@tanstack/react-query';

import { api, client } from '../api/client';
import { qk } from '../api/queries';
import { pairFrom } from '../api/tokens';
import type { AuthOut, MeOut } from '../api/types';

export function hasSession(): boolean {
  return api.tokens.get() !== null;
}

export function signIn(queryClient: QueryClient, auth: AuthOut): void {
  queryClient.clear();
  api.tokens.set(pairFrom(auth));
  const me: MeOut = { user: auth.user, organization: auth.organization, role: auth.role };
  queryClient.setQueryData(qk.me, me);
}

/** Best effort server-side logout (revokes this session), then forget everything locally. */
export async function signOut(queryClient: QueryClient): Promise<void> {
  if (api.tokens.get()) {
    try {
      await client.POST('/api/v1/auth/logout');
    } catch {
      // Offline or already revoked: the local sign-out below is what matters.
    }
  }
  api.tokens.set(null);
  queryClient.clear();
}
