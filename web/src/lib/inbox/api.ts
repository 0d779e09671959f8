/**
 * Channels, inbox and canned-response calls (issue 5): query keys, read hooks and writes.
 *
 * These endpoints are not in the generated `schema.d.ts` yet, so they go through the same
 * openapi-fetch client as everything else (bearer token, one refresh on 401, `unwrap` → data or
 * `ApiError` from problem+json) but with the path typing loosened to plain strings, and the shapes
 * come from the hand-written `./types`. When the server's OpenAPI document has them, drop `loose`,
 * call `client.GET('/api/v1/…')` directly and derive the types from `paths`.
 */
import { useInfiniteQuery, useQuery } from '@tanstack/react-query';

import { client, unwrap } from '../../api/client';
import type {
  AssigneeFilter,
  AttachmentOut,
  CannedIn,
  CannedOut,
  ChannelIn,
  ChannelOut,
  ChannelPatch,
  ChannelTestOut,
  ConversationCounts,
  ConversationOut,
  ConversationPage,
  ConversationPatch,
  MessageOut,
  MessagePage,
  SendIn,
  SimulateIn,
  SimulateOut,
  StatusFilter,
} from './types';

interface Init {
  params?: { path?: Record<string, string>; query?: Record<string, string | number | boolean> };
  body?: unknown;
  headers?: Record<string, string>;
  parseAs?: 'json' | 'blob' | 'text';
}
type Call = (path: string, init?: Init) => Promise<{ data?: unknown; error?: unknown; response: Response }>;
const loose = client as unknown as Record<'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE', Call>;

function get<T>(path: string, init?: Init): Promise<T> {
  return unwrap(loose.GET(path, init)) as Promise<T>;
}
function post<T>(path: string, init?: Init): Promise<T> {
  return unwrap(loose.POST(path, init)) as Promise<T>;
}
function patch<T>(path: string, init?: Init): Promise<T> {
  return unwrap(loose.PATCH(path, init)) as Promise<T>;
}
function del(path: string, init?: Init): Promise<void> {
  return unwrap(loose.DELETE(path, init)) as Promise<void>;
}
const byId = (id: string) => ({ params: { path: { id } } });

export interface ConversationFilters {
  assignee: AssigneeFilter;
  status: StatusFilter;
  channelId: string | null;
  q: string;
}

export const inboxKeys = {
  all: ['inbox'] as const,
  lists: ['inbox', 'list'] as const,
  list: (f: ConversationFilters) => ['inbox', 'list', f] as const,
  counts: ['inbox', 'counts'] as const,
  conversation: (id: string) => ['inbox', 'conversation', id] as const,
  messages: (id: string) => ['inbox', 'messages', id] as const,
  channels: ['channels'] as const,
  channel: (id: string) => ['channels', id] as const,
  canned: ['canned-responses'] as const,
  cannedSearch: (q: string) => ['canned-responses', q] as const,
};

// ---- channels ---------------------------------------------------------------------------------

export const fetchChannels = () => get<ChannelOut[]>('/api/v1/channels');

export function useInboxChannels() {
  return useQuery({ queryKey: inboxKeys.channels, queryFn: fetchChannels, staleTime: 30_000 });
}

export function useInboxChannel(id: string) {
  return useQuery({
    queryKey: inboxKeys.channel(id),
    queryFn: () => get<ChannelOut>('/api/v1/channels/{id}', byId(id)),
  });
}

export const createChannel = (body: ChannelIn) => post<ChannelOut>('/api/v1/channels', { body });
export const updateChannel = (id: string, body: ChannelPatch) =>
  patch<ChannelOut>('/api/v1/channels/{id}', { ...byId(id), body });
export const deleteChannel = (id: string) => del('/api/v1/channels/{id}', byId(id));
export const testChannel = (id: string) => post<ChannelTestOut>('/api/v1/channels/{id}/test', byId(id));
export const simulateInbound = (id: string, body: SimulateIn) =>
  post<SimulateOut>('/api/v1/channels/{id}/simulate', { ...byId(id), body });
export const simulateRead = (id: string, conversationId: string) =>
  post<void>('/api/v1/channels/{id}/simulate/read', { ...byId(id), body: { conversation_id: conversationId } });

// ---- conversations ----------------------------------------------------------------------------

export const CONVERSATION_PAGE = 50;

export function useConversations(f: ConversationFilters) {
  return useInfiniteQuery({
    queryKey: inboxKeys.list(f),
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) =>
      get<ConversationPage>('/api/v1/conversations', {
        params: {
          query: {
            assignee: f.assignee,
            status: f.status,
            ...(f.channelId ? { channel_id: f.channelId } : {}),
            ...(f.q.trim() ? { q: f.q.trim() } : {}),
            limit: CONVERSATION_PAGE,
            ...(pageParam ? { cursor: pageParam } : {}),
          },
        },
      }),
    getNextPageParam: (last) => last.next_cursor ?? undefined,
    placeholderData: (prev) => prev,
  });
}

export function useConversationCounts() {
  return useQuery({
    queryKey: inboxKeys.counts,
    queryFn: () => get<ConversationCounts>('/api/v1/conversations/counts'),
  });
}

export function useConversation(id: string | null) {
  return useQuery({
    queryKey: inboxKeys.conversation(id ?? ''),
    queryFn: () => get<ConversationOut>('/api/v1/conversations/{id}', byId(id!)),
    enabled: !!id,
  });
}

export const patchConversation = (id: string, body: ConversationPatch) =>
  patch<ConversationOut>('/api/v1/conversations/{id}', { ...byId(id), body });
export const assignConversation = (id: string, assigneeId: string | null) =>
  post<ConversationOut>('/api/v1/conversations/{id}/assign', { ...byId(id), body: { assignee_id: assigneeId } });
export const resolveConversation = (id: string) =>
  post<ConversationOut>('/api/v1/conversations/{id}/resolve', byId(id));
export const reopenConversation = (id: string) => post<ConversationOut>('/api/v1/conversations/{id}/reopen', byId(id));
export const markConversationRead = (id: string) => post<void>('/api/v1/conversations/{id}/read', byId(id));

// ---- messages ---------------------------------------------------------------------------------

export const MESSAGE_PAGE = 50;

/** History pages, oldest page first: the first fetch is the newest messages, older ones are prepended. */
export function useConversationMessages(id: string) {
  return useInfiniteQuery({
    queryKey: inboxKeys.messages(id),
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) =>
      get<MessagePage>('/api/v1/conversations/{id}/messages', {
        params: { path: { id }, query: { limit: MESSAGE_PAGE, ...(pageParam ? { before: pageParam } : {}) } },
      }),
    getPreviousPageParam: (first) => (first.has_more && first.items[0] ? first.items[0].id : undefined),
    getNextPageParam: () => undefined,
    staleTime: Infinity,
    // Live events keep the cache current; a reconnect invalidates it.
    refetchOnMount: false,
  });
}

/** Sends one message; `idempotencyKey` makes a retried request not send twice. */
export const sendConversationMessage = (id: string, body: SendIn, idempotencyKey: string) =>
  post<MessageOut>('/api/v1/conversations/{id}/messages', {
    ...byId(id),
    body,
    headers: { 'Idempotency-Key': idempotencyKey },
  });

export function uploadConversationAttachment(id: string, file: File): Promise<AttachmentOut> {
  const form = new FormData();
  form.append('file', file, file.name);
  // openapi-fetch passes FormData through untouched (the browser sets the multipart boundary).
  return post<AttachmentOut>('/api/v1/conversations/{id}/attachments', { ...byId(id), body: form });
}

/** The bytes of a media URL under /api (img/video tags cannot send the bearer token). */
export function fetchMediaBlob(url: string): Promise<Blob> {
  const u = new URL(url, window.location.origin);
  const path = u.pathname + u.search;
  return get<Blob>(path, { parseAs: 'blob' });
}

// ---- canned responses -------------------------------------------------------------------------

export function useCannedResponses(q = '', enabled = true) {
  const query = q.trim();
  return useQuery({
    queryKey: inboxKeys.cannedSearch(query),
    queryFn: () =>
      get<CannedOut[] | { items: CannedOut[] }>('/api/v1/canned-responses', {
        params: { query: query ? { q: query } : {} },
      }).then(listOf),
    enabled,
    placeholderData: (prev) => prev,
  });
}

/** The contract lists canned responses as a plain array; accept `{items}` too (the usual list shape). */
export function listOf<T>(r: T[] | { items: T[] }): T[] {
  return Array.isArray(r) ? r : r.items;
}

export const createCanned = (body: CannedIn) => post<CannedOut>('/api/v1/canned-responses', { body });
export const updateCanned = (id: string, body: Partial<CannedIn>) =>
  patch<CannedOut>('/api/v1/canned-responses/{id}', { ...byId(id), body });
export const deleteCanned = (id: string) => del('/api/v1/canned-responses/{id}', byId(id));
