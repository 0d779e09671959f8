import { describe, expect, it } from 'vitest';

import { canChangeRole, canRemoveMember, countOwners, grantableRoles } from './roles';

const owner = { userId: 'o1', role: 'owner' as const };
const admin = { userId: 'a1', role: 'admin' as const };
const agent = { userId: 'g1', role: 'agent' as const };

describe('member rules', () => {
  it('only owners grant owner', () => {
    expect(grantableRoles('owner')).toContain('owner');
    expect(grantableRoles('admin')).toEqual(['admin', 'agent']);
    expect(grantableRoles('agent')).toEqual([]);
  });

  it("agents can't change roles; admins can't touch owners", () => {
    expect(canChangeRole(agent, { user_id: 'x', role: 'agent' }, 1).allowed).toBe(false);
    expect(canChangeRole(admin, { user_id: 'x', role: 'agent' }, 1).allowed).toBe(true);
    expect(canChangeRole(admin, { user_id: 'x', role: 'owner' }, 2).allowed).toBe(false);
  });

  it("the last owner can't be demoted or removed, a second owner can", () => {
    expect(canChangeRole(owner, { user_id: 'o1', role: 'owner' }, 1)).toMatchObject({
      allowed: false,
      reason: expect.stringMatching(/last owner/),
    });
    expect(canChangeRole(owner, { user_id: 'o2', role: 'owner' }, 2).allowed).toBe(true);
    expect(canRemoveMember(owner, { user_id: 'o2', role: 'owner' }, 1).allowed).toBe(false);
    expect(canRemoveMember(owner, { user_id: 'o2', role: 'owner' }, 2).allowed).toBe(true);
  });

  it('nobody removes themselves here', () => {
    expect(canRemoveMember(owner, { user_id: 'o1', role: 'owner' }, 3).allowed).toBe(false);
  });

  it('counts owners', () => {
    expect(countOwners([{ role: 'owner' }, { role: 'agent' }, { role: 'owner' }])).toBe(2);
  });
});
