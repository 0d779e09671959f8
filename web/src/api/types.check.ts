import type {
  AuthOut,
  MemberOut,
  TeamDetailOut,
  ApiKeyCreatedOut,
  SessionOut,
  InvitationOut,
  InvitationPreviewOut,
  MeOut,
  Body,
} from './types';
import type { paths } from './schema';
type IsNever<T> = [T] extends [never] ? true : false;
type Assert<T extends false> = T;
export type _c = [
  Assert<IsNever<AuthOut>>,
  Assert<IsNever<MemberOut>>,
  Assert<IsNever<TeamDetailOut>>,
  Assert<IsNever<ApiKeyCreatedOut>>,
  Assert<IsNever<SessionOut>>,
  Assert<IsNever<InvitationOut>>,
  Assert<IsNever<InvitationPreviewOut>>,
  Assert<IsNever<MeOut>>,
  Assert<IsNever<Body<paths['/api/v1/auth/register']['post']>>>,
];
