/**
 * Channels, inbox and canned-response calls (issue 5): query keys, read hooks and writes, through
 * the typed openapi-fetch client (bearer token, one refresh on 401, `unwrap` → data or `ApiError`
 * from problem+json). The shapes are named in `./types`, derived from the generated `paths`.
 */
import { useInfiniteQuery, useQuery } from '@tanstack/react-query';

import { client, unwrap } from '../../api/client';
import type {
  AssigneeFilter,
  AttachmentOut,
  CannedIn,
  CannedOut,
  CannedPatch,
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

export const fetchChannels = (): Promise<ChannelOut[]> =>
  unwrap(client.GET('/api/v1/channels')) as Promise<ChannelOut[]>;

export function useInboxChannels() {
  return useQuery({ queryKey: inboxKeys.channels, queryFn: fetchChannels, staleTime: 30_000 });
}

export function useInboxChannel(id: string) {
  return useQuery({
    queryKey: inboxKeys.channel(id),
    queryFn: () => unwrap(client.GET('/api/v1/channels/{id}', byId(id))) as Promise<ChannelOut>,
  });
}

export const createChannel = (body: ChannelIn) =>
  unwrap(client.POST('/api/v1/channels', { body })) as Promise<ChannelOut>;
export const updateChannel = (id: string, body: ChannelPatch) =>
  unwrap(client.PATCH('/api/v1/channels/{id}', { ...byId(id), body })) as Promise<ChannelOut>;
export const deleteChannel = (id: string): Promise<void> =>
  unwrap(client.DELETE('/api/v1/channels/{id}', byId(id))).then(() => undefined);
export const testChannel = (id: string): Promise<ChannelTestOut> =>
  unwrap(client.POST('/api/v1/channels/{id}/test', byId(id)));
/** A simulated customer message; 202 once stored (it is then processed like a real webhook). */
export const simulateInbound = (id: string, body: SimulateIn): Promise<SimulateOut> =>
  unwrap(client.POST('/api/v1/channels/{id}/simulate', { ...byId(id), body }));
export const simulateRead = (id: string, conversationId: string): Promise<void> =>
  unwrap(
    client.POST('/api/v1/channels/{id}/simulate/read', { ...byId(id), body: { conversation_id: conversationId } }),
  ).then(() => undefined);

// ---- conversations ----------------------------------------------------------------------------

export const CONVERSATION_PAGE = 50;

export function useConversations(f: ConversationFilters) {
  return useInfiniteQuery({
    queryKey: inboxKeys.list(f),
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) =>
      unwrap(
        client.GET('/api/v1/conversations', {
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
      ) as Promise<ConversationPage>,
    getNextPageParam: (last) => last.next_cursor ?? undefined,
    placeholderData: (prev) => prev,
  });
}

export function useConversationCounts() {
  return useQuery({
    queryKey: inboxKeys.counts,
    queryFn: (): Promise<ConversationCounts> => unwrap(client.GET('/api/v1/conversations/counts')),
  });
}

export function useConversation(id: string | null) {
  return useQuery({
    queryKey: inboxKeys.conversation(id ?? ''),
    queryFn: () => unwrap(client.GET('/api/v1/conversations/{id}', byId(id!))) as Promise<ConversationOut>,
    enabled: !!id,
  });
}

export const patchConversation = (id: string, body: ConversationPatch) =>
  unwrap(client.PATCH('/api/v1/conversations/{id}', { ...byId(id), body })) as Promise<ConversationOut>;
export const assignConversation = (id: string, assigneeId: string | null) =>
  unwrap(
    client.POST('/api/v1/conversations/{id}/assign', { ...byId(id), body: { assignee_id: assigneeId } }),
  ) as Promise<ConversationOut>;
export const resolveConversation = (id: string) =>
  unwrap(client.POST('/api/v1/conversations/{id}/resolve', byId(id))) as Promise<ConversationOut>;
export const reopenConversation = (id: string) =>
  unwrap(client.POST('/api/v1/conversations/{id}/reopen', byId(id))) as Promise<ConversationOut>;
export const markConversationRead = (id: string): Promise<void> =>
  unwrap(client.POST('/api/v1/conversations/{id}/read', byId(id))).then(() => undefined);

// ---- messages ---------------------------------------------------------------------------------

export const MESSAGE_PAGE = 50;

/** History pages, oldest page first: the first fetch is the newest messages, older ones are prepended. */
export function useConversationMessages(id: string) {
  return useInfiniteQuery({
    queryKey: inboxKeys.messages(id),
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) =>
      unwrap(
        client.GET('/api/v1/conversations/{id}/messages', {
          params: { path: { id }, query: { limit: MESSAGE_PAGE, ...(pageParam ? { before: pageParam } : {}) } },
        }),
      ) as Promise<MessagePage>,
    getPreviousPageParam: (first) => (first.has_more && first.items[0] ? first.items[0].id : undefined),
    getNextPageParam: () => undefined,
    staleTime: Infinity,
    // Live events keep the cache current; a reconnect invalidates it.
    refetchOnMount: false,
  });
}

/** Sends one message; `idempotencyKey` makes a retried request not send twice. */
export const sendConversationMessage = (id: string, body: SendIn, idempotencyKey: string) =>
  unwrap(
    client.POST('/api/v1/conversations/{id}/messages', {
      params: { path: { id }, header: { 'Idempotency-Key': idempotencyKey } },
      body,
    }),
  ) as Promise<MessageOut>;

export function uploadConversationAttachment(id: string, file: File): Promise<AttachmentOut> {
  const form = new FormData();
  form.append('file', file, file.name);
  // openapi-fetch passes FormData through untouched (the browser sets the multipart boundary);
  // the document declares no request body for the multipart upload.
  return unwrap(
    client.POST('/api/v1/conversations/{id}/attachments', {
      ...byId(id),
      body: form as unknown as undefined,
    }),
  );
}

/** The bytes of a media URL under /api (img/video tags cannot send the bearer token). */
export function fetchMediaBlob(url: string): Promise<Blob> {
  const u = new URL(url, window.location.origin);
  const path = u.pathname + u.search;
  // A URL the server handed out, not a path of the document: the path typing is loosened here only.
  const loose = client as unknown as {
    GET(p: string, init: { parseAs: 'blob' }): Promise<{ data?: Blob; error?: unknown; response: Response }>;
  };
  return unwrap(loose.GET(path, { parseAs: 'blob' }));
}

// ---- canned responses -------------------------------------------------------------------------

export function useCannedResponses(q = '', enabled = true) {
  const query = q.trim();
  return useQuery({
    queryKey: inboxKeys.cannedSearch(query),
    queryFn: (): Promise<CannedOut[]> =>
      unwrap(client.GET('/api/v1/canned-responses', { params: { query: query ? { q: query } : {} } })),
    enabled,
    placeholderData: (prev) => prev,
  });
}

export const createCanned = (body: CannedIn): Promise<CannedOut> =>
  unwrap(client.POST('/api/v1/canned-responses', { body }));
export const updateCanned = (id: string, body: CannedPatch): Promise<CannedOut> =>
  unwrap(client.PATCH('/api/v1/canned-responses/{id}', { ...byId(id), body }));
export const deleteCanned = (id: string): Promise<void> =>
  unwrap(client.DELETE('/api/v1/canned-responses/{id}', byId(id))).then(() => undefined);
