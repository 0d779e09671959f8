/**
 * Names for the shapes the pages use, derived from the generated `paths` (not from component
 * names) so they keep working whatever the backend calls its schemas.
 */
import type { paths } from './schema';

type Json<T> = T extends { content: { 'application/json': infer B } } ? B : never;
type Ok<Op> = Op extends { responses: infer R }
  ? R extends { 200: infer S }
    ? Json<S>
    : R extends { 201: infer S }
      ? Json<S>
      : never
  : never;
export type Body<Op> = Op extends { requestBody?: infer B } ? Json<NonNullable<B>> : never;

export type AuthOut = Ok<paths['/api/v1/auth/login']['post']>;
export type MeOut = Ok<paths['/api/v1/me']['get']>;
export type UserOut = MeOut['user'];
export type OrgOut = MeOut['organization'];
export type Role = MeOut['role'];
export type MemberOut = Ok<paths['/api/v1/members']['get']>['items'][number];
export type TeamOut = Ok<paths['/api/v1/teams']['get']>['items'][number];
export type TeamDetailOut = Ok<paths['/api/v1/teams/{id}']['get']>;
export type InvitationOut = Ok<paths['/api/v1/invitations']['get']>['items'][number];
export type InvitationPreviewOut = Ok<paths['/api/v1/auth/invitations/{token}']['get']>;
export type ApiKeyOut = Ok<paths['/api/v1/api-keys']['get']>['items'][number];
export type ApiKeyCreatedOut = Ok<paths['/api/v1/api-keys']['post']>;
export type SessionOut = Ok<paths['/api/v1/sessions']['get']>['items'][number];

export const ROLES: readonly Role[] = ['owner', 'admin', 'agent'];
export const ROLE_LABEL: Record<Role, string> = { owner: 'Owner', admin: 'Admin', agent: 'Agent' };
const RANK: Record<Role, number> = { agent: 0, admin: 1, owner: 2 };

export function atLeast(role: Role | undefined, min: Role): boolean {
  return role !== undefined && RANK[role] >= RANK[min];
}

export type ContactOut = Ok<paths['/api/v1/contacts/{id}']['get']>;
export type ContactPageOut = Ok<paths['/api/v1/contacts']['get']>;
export type ContactIn = Body<paths['/api/v1/contacts']['post']>;
export type ContactPatch = Body<paths['/api/v1/contacts/{id}']['patch']>;
export type IdentityOut = ContactOut['identities'][number];
export type IdentityKind = IdentityOut['kind'];
export type AttrDefOut = Ok<paths['/api/v1/contact-attributes']['get']>['items'][number];
export type AttrType = AttrDefOut['type'];
export type ContactSettingsOut = Ok<paths['/api/v1/contact-settings']['get']>;
export type TagOut = Ok<paths['/api/v1/tags']['get']>['items'][number];
export type GroupOut = Ok<paths['/api/v1/groups']['get']>['items'][number];
export type BulkIn = Body<paths['/api/v1/contacts/bulk']['post']>;
export type BulkAction = BulkIn['action'];
export type ConsentLedgerOut = Ok<paths['/api/v1/contacts/{id}/consent']['get']>;
export type ConsentIn = Body<paths['/api/v1/contacts/{id}/consent']['post']>;
export type ConsentStateOut = ConsentLedgerOut['current'][number];
export type ConsentEntryOut = ConsentLedgerOut['history'][number];
export type ConsentChannel = ConsentIn['channel'];
export type ConsentPurpose = ConsentIn['purpose'];
export type ConsentStatus = ConsentIn['status'];
export type ConsentSource = ConsentEntryOut['source'];
export type SegmentOut = Ok<paths['/api/v1/segments']['get']>['items'][number];
