/**
 * The member-management rules of the API, mirrored so the UI disables what the server would
 * refuse (the server stays the authority; its 403/409 still show up as notifications).
 */
import { atLeast, type MemberOut, type Role } from '../api/types';

export interface Actor {
  userId: string;
  role: Role;
}

export interface Verdict {
  allowed: boolean;
  reason?: string;
}

const yes: Verdict = { allowed: true };
const no = (reason: string): Verdict => ({ allowed: false, reason });

/** Roles `actor` may hand out: only owners grant owner. */
export function grantableRoles(actor: Role): Role[] {
  if (actor === 'owner') return ['owner', 'admin', 'agent'];
  if (actor === 'admin') return ['admin', 'agent'];
  return [];
}

export function countOwners(members: Pick<MemberOut, 'role'>[]): number {
  return members.filter((m) => m.role === 'owner').length;
}

export function canChangeRole(actor: Actor, member: Pick<MemberOut, 'role' | 'user_id'>, owners: number): Verdict {
  if (!atLeast(actor.role, 'admin')) return no('Only admins and owners can change roles');
  if (member.role === 'owner' && actor.role !== 'owner') return no("Only owners can change an owner's role");
  if (member.role === 'owner' && owners <= 1) return no("The organization's last owner can't be demoted");
  return yes;
}

export function canRemoveMember(actor: Actor, member: Pick<MemberOut, 'role' | 'user_id'>, owners: number): Verdict {
  if (!atLeast(actor.role, 'admin')) return no('Only admins and owners can remove members');
  // The API would let you remove yourself; the UI doesn't offer it, as it would lock you out here.
  if (member.user_id === actor.userId) return no("You can't remove yourself");
  if (member.role === 'owner' && actor.role !== 'owner') return no('Only owners can remove an owner');
  if (member.role === 'owner' && owners <= 1) return no("The organization's last owner can't be removed");
  return yes;
}
