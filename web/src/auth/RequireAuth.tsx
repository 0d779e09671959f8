import { Center, Loader } from '@mantine/core';
import type { ReactNode } from 'react';
import { Navigate, useLocation } from 'react-router';

import { useMe } from '../api/queries';
import { ErrorState } from '../components/QueryState';
import { hasSession } from './session';
import { isApiError } from '../api/problem';

/** Renders its children for a signed-in user with a loaded `/me`; otherwise goes to /login. */
export function RequireAuth({ children }: { children: ReactNode }) {
  const location = useLocation();
  const signedIn = hasSession();
  const me = useMe(signedIn);
  const from = location.pathname + location.search;

  if (!signedIn || (me.isError && isApiError(me.error) && me.error.status === 401)) {
    return <Navigate to="/login" replace state={{ from }} />;
  }
  if (me.isPending) {
    return (
      <Center mih="100vh" data-testid="loading">
        <Loader />
      </Center>
    );
  }
  if (me.isError) {
    return (
      <Center mih="100vh" p="md">
        <ErrorState error={me.error} onRetry={() => void me.refetch()} />
      </Center>
    );
  }
  return <>{children}</>;
}
