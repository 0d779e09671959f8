/** Query keys and read hooks, one per resource, so invalidation is spelled the same everywhere. */
import { useInfiniteQuery, useQuery } from '@tanstack/react-query';

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
  contacts: ['contacts'] as const,
  contactList: (f: ContactFilters) => ['contacts', 'list', f] as const,
  contact: (id: string) => ['contacts', 'one', id] as const,
  contactAttributes: ['contact-attributes'] as const,
  contactSettings: ['contact-settings'] as const,
  consent: (id: string) => ['contacts', 'consent', id] as const,
  tags: ['tags'] as const,
  groups: ['groups'] as const,
  segments: ['segments'] as const,
  segmentCount: (id: string) => ['segments', 'count', id] as const,
};

export type ContactSort = 'name' | '-created_at' | '-updated_at';

export interface ContactFilters {
  q: string;
  sort: ContactSort;
  favorite: boolean;
  blocked: boolean;
  /** Tag id, or null for any. */
  tag?: string | null;
  /** Group id, or null for any. */
  group?: string | null;
  /** Saved segment id, or null for any. */
  segment?: string | null;
}

export const CONTACT_PAGE_SIZE = 50;

export function useContacts(f: ContactFilters) {
  return useInfiniteQuery({
    queryKey: qk.contactList(f),
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) =>
      unwrap(
        client.GET('/api/v1/contacts', {
          params: {
            query: {
              ...(f.q.trim() ? { q: f.q.trim() } : {}),
              sort: f.sort,
              ...(f.favorite ? { favorite: true } : {}),
              ...(f.blocked ? { blocked: true } : {}),
              ...(f.tag ? { tag: f.tag } : {}),
              ...(f.group ? { group: f.group } : {}),
              ...(f.segment ? { segment: f.segment } : {}),
              limit: CONTACT_PAGE_SIZE,
              ...(pageParam ? { cursor: pageParam } : {}),
            },
          },
        }),
      ),
    getNextPageParam: (last) => last.next_cursor ?? undefined,
    placeholderData: (prev) => prev,
  });
}

export function useContact(id: string | null) {
  return useQuery({
    queryKey: qk.contact(id ?? ''),
    queryFn: () => unwrap(client.GET('/api/v1/contacts/{id}', { params: { path: { id: id! } } })),
    enabled: !!id,
  });
}

export function useContactAttributes() {
  return useQuery({
    queryKey: qk.contactAttributes,
    queryFn: async () => (await unwrap(client.GET('/api/v1/contact-attributes'))).items,
  });
}

export function useContactSettings() {
  return useQuery({
    queryKey: qk.contactSettings,
    queryFn: () => unwrap(client.GET('/api/v1/contact-settings')),
  });
}

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

export function useConsent(id: string) {
  return useQuery({
    queryKey: qk.consent(id),
    queryFn: () => unwrap(client.GET('/api/v1/contacts/{id}/consent', { params: { path: { id } } })),
  });
}

export function useTags() {
  return useQuery({ queryKey: qk.tags, queryFn: async () => (await unwrap(client.GET('/api/v1/tags'))).items });
}

export function useGroups() {
  return useQuery({ queryKey: qk.groups, queryFn: async () => (await unwrap(client.GET('/api/v1/groups'))).items });
}

export function useSegments() {
  return useQuery({
    queryKey: qk.segments,
    queryFn: async () => (await unwrap(client.GET('/api/v1/segments'))).items,
  });
}
