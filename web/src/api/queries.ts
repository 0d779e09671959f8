/** Query keys and read hooks, one per resource, so invalidation is spelled the same everywhere. */
import { useQuery } from '@tanstack/react-query';

import { client, unwrap } from './client';

export const qk = {
  me: ['me'] as const,
  organization: ['organization'] as const,
  members: ['members'] as const,
  invitations: ['invitations'] as const,
  teams: ['teams'] as const,
  team: (id: string) => ['teams', id] as const,
  apiKeys: ['api-keys'] as const,
  sessions: ['sessions'] as const,
  invitationPreview: (token: string) => ['invitation-preview', token] as const,
};

export function useMe(enabled = true) {
  return useQuery({ queryKey: qk.me, queryFn: () => unwrap(client.GET('/api/v1/me')), enabled, staleTime: 60_000 });
}

export function useOrganization() {
  return useQuery({ queryKey: qk.organization, queryFn: () => unwrap(client.GET('/api/v1/organization')) });
}

export function useMembers() {
  return useQuery({
    queryKey: qk.members,
    queryFn: async () => (await unwrap(client.GET('/api/v1/members'))).items,
  });
}

export function useInvitations(enabled = true) {
  return useQuery({
    queryKey: qk.invitations,
    queryFn: async () => (await unwrap(client.GET('/api/v1/invitations'))).items,
    enabled,
  });
}

export function useTeams() {
  return useQuery({ queryKey: qk.teams, queryFn: async () => (await unwrap(client.GET('/api/v1/teams'))).items });
}

export function useTeam(id: string) {
  return useQuery({
    queryKey: qk.team(id),
    queryFn: () => unwrap(client.GET('/api/v1/teams/{id}', { params: { path: { id } } })),
  });
}

export function useApiKeys(enabled = true) {
  return useQuery({
    queryKey: qk.apiKeys,
    queryFn: async () => (await unwrap(client.GET('/api/v1/api-keys'))).items,
    enabled,
  });
}

export function useSessions() {
  return useQuery({ queryKey: qk.sessions, queryFn: async () => (await unwrap(client.GET('/api/v1/sessions'))).items });
}
