/**
 * Team chat over REST: query keys, read hooks and the calls the chat screens make. Every chat
 * request goes through here, so the unlock header for locked channels is added in one place.
 */
import { useInfiniteQuery, useQuery } from '@tanstack/react-query';

import type {
  AttachmentOut,
  ChannelIn,
  ChannelMemberOut,
  ChannelOut,
  ChannelPatch,
  MessageIn,
  MessageOut,
  MessagePage,
  ThreadOut,
} from './chatTypes';
import { client, unwrap } from './client';

const c = client;

export const chatKeys = {
  all: ['chat'] as const,
  channels: ['chat', 'channels'] as const,
  channel: (id: string) => ['chat', 'channel', id] as const,
  messagesOf: (channelId: string) => ['chat', 'messages', channelId] as const,
  messages: (channelId: string, around: string | null) => ['chat', 'messages', channelId, around ?? 'latest'] as const,
  thread: (parentId: string) => ['chat', 'thread', parentId] as const,
  pins: (channelId: string) => ['chat', 'pins', channelId] as const,
  members: (channelId: string) => ['chat', 'members', channelId] as const,
  browse: (q: string) => ['chat', 'browse', q] as const,
  search: (q: string, channelId: string | null) => ['chat', 'search', q, channelId ?? 'all'] as const,
  presence: ['presence'] as const,
};

// ---- unlock tokens ----------------------------------------------------------------------------

/**
 * Unlock tokens of locked channels, in memory only (a reload asks for the password again), keyed
 * by channel id and dropped a little before the server's expiry.
 */
const unlocks = new Map<string, { token: string; expiresAt: number }>();

export function unlockTokenFor(channelId: string, now = Date.now()): string | null {
  const u = unlocks.get(channelId);
  if (!u) return null;
  if (u.expiresAt <= now) {
    unlocks.delete(channelId);
    return null;
  }
  return u.token;
}

export function rememberUnlock(channelId: string, token: string, expiresInSecs: number, now = Date.now()): void {
  unlocks.set(channelId, { token, expiresAt: now + Math.max(0, expiresInSecs - 15) * 1000 });
}

export function forgetUnlock(channelId: string): void {
  unlocks.delete(channelId);
}

function unlockHeaders(channelId: string | null | undefined): Record<string, string> {
  const token = channelId ? unlockTokenFor(channelId) : null;
  return token ? { 'X-Chat-Unlock': token } : {};
}

/** All current unlock tokens (search spans channels; the server accepts any of them). */
function allUnlockHeaders(): Record<string, string> {
  const now = Date.now();
  const tokens = [...unlocks.entries()].filter(([, u]) => u.expiresAt > now).map(([, u]) => u.token);
  return tokens.length ? { 'X-Chat-Unlock': tokens.join(',') } : {};
}

// ---- reads ------------------------------------------------------------------------------------

export const MESSAGE_PAGE = 50;

export function fetchChannels(): Promise<ChannelOut[]> {
  return unwrap(c.GET('/api/v1/chat/channels')).then((r: { items: ChannelOut[] }) => r.items);
}

export function useChannels(enabled = true) {
  return useQuery({ queryKey: chatKeys.channels, queryFn: fetchChannels, enabled, staleTime: 30_000 });
}

export function useChannel(id: string | null) {
  return useQuery({
    queryKey: chatKeys.channel(id ?? ''),
    queryFn: (): Promise<ChannelOut> => unwrap(c.GET('/api/v1/chat/channels/{id}', { params: { path: { id: id! } } })),
    enabled: !!id,
  });
}

type Cursor = { before?: string; after?: string; around?: string };

export function fetchMessages(channelId: string, cursor: Cursor, limit = MESSAGE_PAGE): Promise<MessagePage> {
  return unwrap(
    c.GET('/api/v1/chat/channels/{id}/messages', {
      params: { path: { id: channelId }, query: { ...cursor, limit } },
      headers: unlockHeaders(channelId),
    }),
  );
}

/**
 * A channel's history as a two-way infinite query: the first page is the latest messages (or the
 * ones around `around` when jumping to a message); older pages are prepended, newer appended.
 */
export function useMessages(channelId: string, around: string | null, enabled = true) {
  return useInfiniteQuery({
    queryKey: chatKeys.messages(channelId, around),
    initialPageParam: (around ? { around } : {}) as Cursor,
    queryFn: ({ pageParam }: { pageParam: Cursor }) => fetchMessages(channelId, pageParam),
    getPreviousPageParam: (first: MessagePage): Cursor | undefined =>
      first.has_more_before && first.items[0] ? { before: first.items[0].id } : undefined,
    getNextPageParam: (last: MessagePage): Cursor | undefined =>
      last.has_more_after && last.items.length > 0 ? { after: last.items[last.items.length - 1]!.id } : undefined,
    enabled,
    staleTime: Infinity,
    // Live events keep the cache current; a reconnect invalidates it.
    refetchOnMount: false,
  });
}

export function useThread(parentId: string | null, channelId: string | null) {
  return useQuery({
    queryKey: chatKeys.thread(parentId ?? ''),
    queryFn: (): Promise<ThreadOut> =>
      unwrap(
        c.GET('/api/v1/chat/messages/{id}/thread', {
          params: { path: { id: parentId! }, query: { limit: 100 } },
          headers: unlockHeaders(channelId),
        }),
      ),
    enabled: !!parentId,
    staleTime: Infinity,
  });
}

export function usePins(channelId: string, enabled = true) {
  return useQuery({
    queryKey: chatKeys.pins(channelId),
    queryFn: async (): Promise<MessageOut[]> =>
      (
        await unwrap(
          c.GET('/api/v1/chat/channels/{id}/pins', {
            params: { path: { id: channelId } },
            headers: unlockHeaders(channelId),
          }),
        )
      ).items,
    enabled,
  });
}

export function useChannelMembers(channelId: string, enabled = true) {
  return useQuery({
    queryKey: chatKeys.members(channelId),
    queryFn: async (): Promise<ChannelMemberOut[]> =>
      (await unwrap(c.GET('/api/v1/chat/channels/{id}/members', { params: { path: { id: channelId } } }))).items,
    enabled,
  });
}

export function useBrowseChannels(q: string, enabled = true) {
  return useQuery({
    queryKey: chatKeys.browse(q),
    queryFn: async (): Promise<ChannelOut[]> =>
      (await unwrap(c.GET('/api/v1/chat/channels/browse', { params: { query: q ? { q } : {} } }))).items,
    enabled,
    placeholderData: (prev) => prev,
  });
}

export function useSearchMessages(q: string, channelId: string | null) {
  const query = q.trim();
  return useQuery({
    queryKey: chatKeys.search(query, channelId),
    queryFn: async (): Promise<MessageOut[]> =>
      (
        await unwrap(
          c.GET('/api/v1/chat/search', {
            params: { query: { q: query, limit: 50, ...(channelId ? { channel_id: channelId } : {}) } },
            headers: allUnlockHeaders(),
          }),
        )
      ).items,
    enabled: query.length > 0,
    placeholderData: (prev) => prev,
  });
}

export type PresenceStatus = 'online' | 'away' | 'offline';

export function usePresence() {
  return useQuery({
    queryKey: chatKeys.presence,
    queryFn: async (): Promise<Record<string, PresenceStatus>> => {
      const r = await unwrap(client.GET('/api/v1/presence'));
      return Object.fromEntries(r.items.map((p) => [p.user_id, p.status as PresenceStatus]));
    },
    staleTime: 60_000,
  });
}

// ---- writes -----------------------------------------------------------------------------------

export type SendIn = MessageIn;

export function sendMessage(channelId: string, body: SendIn): Promise<MessageOut> {
  return unwrap(c.POST('/api/v1/chat/channels/{id}/messages', { params: { path: { id: channelId } }, body }));
}

export function editMessage(id: string, text: string): Promise<MessageOut> {
  return unwrap(c.PATCH('/api/v1/chat/messages/{id}', { params: { path: { id } }, body: { text } }));
}

export function deleteMessage(id: string): Promise<void> {
  return unwrap(c.DELETE('/api/v1/chat/messages/{id}', { params: { path: { id } } }));
}

export function forwardMessage(id: string, channelId: string, text?: string): Promise<MessageOut> {
  return unwrap(
    c.POST('/api/v1/chat/messages/{id}/forward', {
      params: { path: { id } },
      body: { channel_id: channelId, ...(text ? { text } : {}) },
    }),
  );
}

export function setReaction(id: string, emoji: string, on: boolean): Promise<{ reactions: MessageOut['reactions'] }> {
  const call = on ? c.PUT : c.DELETE;
  return unwrap(call('/api/v1/chat/messages/{id}/reactions/{emoji}', { params: { path: { id, emoji } } }));
}

export function setPinned(id: string, on: boolean): Promise<unknown> {
  const call = on ? c.PUT : c.DELETE;
  return unwrap(call('/api/v1/chat/messages/{id}/pin', { params: { path: { id } } }));
}

export function markRead(channelId: string, messageId: string): Promise<unknown> {
  return unwrap(
    c.POST('/api/v1/chat/channels/{id}/read', { params: { path: { id: channelId } }, body: { message_id: messageId } }),
  );
}

export function createChannel(body: ChannelIn): Promise<ChannelOut> {
  return unwrap(c.POST('/api/v1/chat/channels', { body }));
}

export function openDm(userIds: string[]): Promise<ChannelOut> {
  return unwrap(c.POST('/api/v1/chat/dms', { body: { user_ids: userIds } }));
}

export type { ChannelPatch };

export function patchChannel(id: string, body: ChannelPatch): Promise<ChannelOut> {
  return unwrap(c.PATCH('/api/v1/chat/channels/{id}', { params: { path: { id } }, body }));
}

export function addMembers(id: string, userIds: string[]): Promise<unknown> {
  return unwrap(
    c.POST('/api/v1/chat/channels/{id}/members', { params: { path: { id } }, body: { user_ids: userIds } }),
  );
}

export function removeMember(id: string, userId: string): Promise<unknown> {
  return unwrap(
    c.DELETE('/api/v1/chat/channels/{id}/members/{user_id}', { params: { path: { id, user_id: userId } } }),
  );
}

export function joinChannel(id: string): Promise<unknown> {
  return unwrap(c.POST('/api/v1/chat/channels/{id}/join', { params: { path: { id } } }));
}

export function leaveChannel(id: string): Promise<unknown> {
  return unwrap(c.POST('/api/v1/chat/channels/{id}/leave', { params: { path: { id } } }));
}

export function lockChannel(id: string, password: string): Promise<unknown> {
  return unwrap(c.PUT('/api/v1/chat/channels/{id}/lock', { params: { path: { id } }, body: { password } }));
}

export function removeLock(id: string, password: string): Promise<unknown> {
  return unwrap(c.DELETE('/api/v1/chat/channels/{id}/lock', { params: { path: { id } }, body: { password } }));
}

export async function unlockChannel(id: string, password: string): Promise<void> {
  const r: { unlock_token: string; expires_in: number } = await unwrap(
    c.POST('/api/v1/chat/channels/{id}/unlock', { params: { path: { id } }, body: { password } }),
  );
  rememberUnlock(id, r.unlock_token, r.expires_in);
}

export interface UploadIn {
  file: Blob;
  name: string;
  viewOnce?: boolean;
  durationMs?: number;
  waveform?: number[];
}

export function uploadAttachment(u: UploadIn): Promise<AttachmentOut> {
  const form = new FormData();
  form.append('file', u.file, u.name);
  if (u.viewOnce) form.append('view_once', 'true');
  if (u.durationMs !== undefined) form.append('duration_ms', String(Math.round(u.durationMs)));
  if (u.waveform) form.append('waveform', JSON.stringify(u.waveform));
  // openapi-fetch passes FormData through untouched (the browser sets the multipart boundary).
  return unwrap(c.POST('/api/v1/chat/attachments', { body: form as never }));
}

/** URL of an attachment's bytes, fetched with the bearer token (img/audio tags cannot send it). */
export async function fetchAttachmentBlob(url: string, channelId: string | null): Promise<Blob> {
  const m = /\/api\/v1\/chat\/attachments\/([0-9a-fA-F-]{36})(\/thumbnail)?$/.exec(
    new URL(url, window.location.origin).pathname,
  );
  if (!m) throw new Error(`not an attachment URL: ${url}`);
  const init = { params: { path: { id: m[1]! } }, parseAs: 'blob' as const, headers: unlockHeaders(channelId) };
  const r = m[2]
    ? await unwrap(c.GET('/api/v1/chat/attachments/{id}/thumbnail', init))
    : await unwrap(c.GET('/api/v1/chat/attachments/{id}', init));
  return r as unknown as Blob;
}
