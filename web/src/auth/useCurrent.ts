import { useMe } from '../api/queries';
import type { MeOut } from '../api/types';

/** The signed-in user, org and role. Only for components under `RequireAuth`. */
export function useCurrent(): MeOut {
  const me = useMe();
  if (!me.data) throw new Error('useCurrent() used outside RequireAuth');
  return me.data;
}
