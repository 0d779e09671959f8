import { screen, within } from '@testing-library/react';
import { describe, expect, it, vi } from 'vitest';

import type { ChannelOut } from '../../api/chatTypes';
import type { MeOut } from '../../api/types';
import { SocketProvider } from '../../chat/SocketProvider';
import { json, mockFetch, renderRoutes } from '../../test/render';
import { ChatPage } from './ChatPage';

// No real socket in jsdom: a stand-in that never connects.
vi.mock('socket.io-client', () => ({
  io: () => {
    const handlers = new Map<string, unknown>();
    return {
      on: (e: string, f: unknown) => handlers.set(e, f),
      off: () => undefined,
      emit: () => undefined,
      connect: () => undefined,
      disconnect: () => undefined,
      removeAllListeners: () => undefined,
      connected: false,
      active: true,
      io: { on: () => undefined },
    };
  },
}));

const ME = '00000000-0000-7000-8000-000000000001';
const ANA = '00000000-0000-7000-8000-000000000002';
const me: MeOut = {
  user: { id: ME, email: 'me@example.com', name: 'Me', avatar_url: null, status_text: null, created_at: '' },
  organization: { id: 'o', name: 'Org', created_at: '' },
  role: 'agent',
};
const T = '2026-01-01T00:00:00Z';

function channel(over: Partial<ChannelOut>): ChannelOut {
  return {
    id: '00000000-0000-7000-8000-0000000000c1',
    kind: 'public',
    name: 'general',
    topic: null,
    archived: false,
    disappearing: 'off',
    member_count: 2,
    members_preview: [],
    my_role: 'member',
    joined: true,
    unread_count: 0,
    mention_count: 0,
    last_read_id: null,
    last_message: null,
    last_activity_at: T,
    locked: false,
    created_at: T,
    ...over,
  };
}

const lastMessage = (text: string) => ({
  id: 'm1',
  channel_id: 'x',
  author: { id: ANA, name: 'Ana', avatar_url: null },
  text,
  mentions: [],
  mentions_channel: false,
  thread_id: null,
  reply_count: 0,
  last_reply_at: null,
  quote: null,
  forwarded_from: null,
  attachments: [],
  reactions: [],
  pinned: false,
  edited_at: null,
  deleted: false,
  created_at: T,
  expires_at: null,
  read_by: [],
});

const routes = [
  {
    path: '/chat/:channelId?',
    element: (
      <SocketProvider>
        <ChatPage />
      </SocketProvider>
    ),
  },
];

describe('ChatPage', () => {
  it('lists channels and DMs with badges, presence, previews, and hides locked previews', async () => {
    mockFetch((_req, key) => {
      if (key === 'GET /api/v1/chat/channels')
        return json(200, {
          items: [
            channel({ unread_count: 3, mention_count: 1, last_message: lastMessage('**hello** team') }),
            channel({
              id: '00000000-0000-7000-8000-0000000000c2',
              kind: 'dm',
              name: null,
              members_preview: [{ user_id: ANA, name: 'Ana Silva', avatar_url: null }],
              locked: true,
              last_message: null,
            }),
          ],
        });
      if (key === 'GET /api/v1/presence')
        return json(200, { items: [{ user_id: ANA, status: 'online', last_seen: T }] });
      return json(404, { title: 'Not found', status: 404, code: 'not_found' });
    });
    renderRoutes(routes, '/chat', { me });
    const general = await screen.findByRole('link', { name: 'general' });
    expect(within(general).getByTestId('unread-badge')).toHaveTextContent('3');
    expect(within(general).getByTestId('mention-badge')).toHaveTextContent('@1');
    expect(within(general).getByTestId('channel-preview')).toHaveTextContent('hello team');
    const dm = screen.getByRole('link', { name: 'Ana Silva' });
    expect(within(dm).queryByTestId('channel-preview')).toBeNull();
    expect(dm).toHaveTextContent('Locked');
    expect(await within(dm).findByTestId('presence-dot')).toHaveAttribute('data-status', 'online');
    expect(screen.getByText('Pick a conversation')).toBeInTheDocument();
  });

  it('shows the empty sidebar', async () => {
    mockFetch(() => json(200, { items: [] }));
    renderRoutes(routes, '/chat', { me });
    expect(await screen.findByText('No conversations yet')).toBeInTheDocument();
  });

  it('shows an error with a retry when the channels cannot load', async () => {
    mockFetch(() => json(500, { title: 'Boom', status: 500, code: 'internal' }));
    renderRoutes(routes, '/chat', { me });
    expect(await screen.findByText('Could not load channels', {}, { timeout: 5000 })).toBeInTheDocument();
    expect(screen.getAllByRole('button', { name: 'Try again' }).length).toBeGreaterThan(0);
  });

  it('asks for the password when the open chat is locked', async () => {
    const locked = channel({ locked: true });
    mockFetch((_req, key) => {
      if (key === 'GET /api/v1/chat/channels') return json(200, { items: [locked] });
      if (key === `GET /api/v1/chat/channels/${locked.id}`) return json(200, locked);
      return json(200, { items: [] });
    });
    renderRoutes(routes, `/chat/${locked.id}`, { me });
    expect(await screen.findByTestId('unlock-prompt')).toBeInTheDocument();
    expect(screen.queryByTestId('message-list')).toBeNull();
  });
});
