/** Test data for the inbox unit tests (not used by the app). */
import type { ConversationOut, MessageOut } from './types';

export function conversation(id: string, over: Partial<ConversationOut> = {}): ConversationOut {
  return {
    id,
    channel: { id: 'ch-1', kind: 'sandbox', name: 'Sandbox' },
    contact: { id: `ct-${id}`, name: 'Ada Lovelace', avatar_url: null, phone: null, handle: 'ada' },
    status: 'open',
    snoozed_until: null,
    priority: 'none',
    assignee: null,
    team: null,
    labels: [],
    unread_count: 0,
    last_message: null,
    window: { open: true, expires_at: null },
    last_activity_at: '2026-01-01T10:00:00Z',
    created_at: '2026-01-01T09:00:00Z',
    updated_at: '2026-01-01T10:00:00Z',
    ...over,
  };
}

export function message(id: string, over: Partial<MessageOut> = {}): MessageOut {
  return {
    id,
    conversation_id: 'c1',
    direction: 'inbound',
    kind: 'text',
    text: `text ${id}`,
    content: null,
    media: null,
    reply_to: null,
    reactions: [],
    status: 'received',
    error: null,
    author: null,
    private: false,
    created_at: '2026-01-01T10:00:00Z',
    sent_at: null,
    delivered_at: null,
    read_at: null,
    edited: false,
    ...over,
  };
}
