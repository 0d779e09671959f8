import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it, vi } from 'vitest';

import type { MeOut } from '../../api/types';
import { SocketProvider } from '../../chat/SocketProvider';
import { conversation, message } from '../../lib/inbox/fixtures';
import { json, mockFetch, renderRoutes } from '../../test/render';
import { InboxPage } from './InboxPage';

// No real socket in jsdom: a stand-in that never connects.
vi.mock('socket.io-client', () => ({
  io: () => ({
    on: () => undefined,
    off: () => undefined,
    emit: () => undefined,
    connect: () => undefined,
    disconnect: () => undefined,
    removeAllListeners: () => undefined,
    connected: false,
    active: true,
    io: { on: () => undefined },
  }),
}));

const ME = '00000000-0000-7000-8000-000000000001';
const me: MeOut = {
  user: { id: ME, email: 'me@example.com', name: 'Grace Hopper', avatar_url: null, status_text: null, created_at: '' },
  organization: { id: 'o', name: 'Org', created_at: '' },
  role: 'owner',
};
const routes = [
  {
    path: '/inbox/:conversationId?',
    element: (
      <SocketProvider>
        <InboxPage />
      </SocketProvider>
    ),
  },
];
const notFound = () => json(404, { title: 'Not found', status: 404, code: 'not_found' });
const contact = (id: string) => ({
  id,
  name: 'Ada Lovelace',
  favorite: false,
  blocked: false,
  avatar_url: null,
  company: null,
  identities: [{ id: 'i1', kind: 'email', value: 'ada@example.com', created_at: '' }],
  tags: [],
  groups: [],
  attributes: {},
  language: null,
  time_zone: null,
  notes: null,
  created_at: '',
  updated_at: '',
});

describe('InboxPage', () => {
  it('guides a new organization: connect a channel or try the Sandbox', async () => {
    mockFetch((_req, key) => {
      if (key === 'GET /api/v1/channels') return json(200, []);
      if (key === 'GET /api/v1/conversations') return json(200, { items: [], next_cursor: null });
      if (key === 'GET /api/v1/conversations/counts') return json(200, { mine: 0, unassigned: 0, all: 0 });
      return notFound();
    });
    renderRoutes(routes, '/inbox', { me });
    expect(await screen.findByText('No conversations yet — connect a channel or try the Sandbox')).toBeInTheDocument();
    expect(screen.getByRole('link', { name: 'Connect a channel' })).toHaveAttribute(
      'href',
      '/settings/channels?connect=1',
    );
    expect(screen.getByRole('button', { name: 'Try the Sandbox' })).toBeEnabled();
    expect(await screen.findByTestId('count-all')).toHaveTextContent('0');
  });

  it('lists conversations with unread badge, preview tick and assignee; a closed WhatsApp window allows only templates and notes', async () => {
    const wa = conversation('c-wa', {
      channel: { id: 'w1', kind: 'whatsapp', name: 'Support WhatsApp' },
      unread_count: 3,
      assignee: { id: ME, name: 'Grace Hopper', avatar_url: null },
      window: { open: false, expires_at: '2026-01-01T00:00:00Z' },
      last_message: { id: 'm1', direction: 'outbound', kind: 'text', preview: 'See you', status: 'read', at: '' },
    });
    const { calls } = mockFetch((_req, key) => {
      if (key === 'GET /api/v1/channels') return json(200, []);
      if (key === 'GET /api/v1/conversations') return json(200, { items: [wa], next_cursor: null });
      if (key === 'GET /api/v1/conversations/counts') return json(200, { mine: 1, unassigned: 0, all: 1 });
      if (key === 'GET /api/v1/conversations/c-wa') return json(200, wa);
      if (key === 'GET /api/v1/conversations/c-wa/messages')
        return json(200, { items: [message('m1')], has_more: false });
      if (key === 'GET /api/v1/members') return json(200, { items: [] });
      if (key === 'GET /api/v1/contacts/ct-c-wa') return json(200, contact('ct-c-wa'));
      if (key === 'POST /api/v1/conversations/c-wa/read') return new Response(null, { status: 204 });
      return notFound();
    });
    const { router } = renderRoutes(routes, '/inbox?assignee=me', { me });
    const row = await screen.findByTestId('conversation-item');
    expect(within(row).getByTestId('unread-badge')).toHaveTextContent('3');
    expect(within(row).getByTestId('status-tick')).toHaveAttribute('data-status', 'read');
    expect(within(row).getByTestId('assignee-avatar')).toBeInTheDocument();
    expect(within(row).getByTestId('kind-whatsapp')).toBeInTheDocument();
    expect(calls.find((c) => c.key === 'GET /api/v1/conversations')!.request.url).toContain('assignee=me&status=open');

    // Opening it keeps the filters in the URL.
    await userEvent.click(row);
    expect(router.state.location.pathname).toBe('/inbox/c-wa');
    expect(router.state.location.search).toBe('?assignee=me');

    const indicator = await screen.findByTestId('window-indicator');
    expect(indicator).toHaveTextContent('The 24-hour window is closed — only templates can be sent');
    expect(screen.getByRole('textbox', { name: 'Reply' })).toBeDisabled();
    expect(screen.getByRole('button', { name: 'Templates' })).toHaveAttribute('data-highlight', 'true');
    // Notes are never sent to the customer: still possible.
    await userEvent.click(screen.getByText('Private note'));
    expect(screen.getByRole('textbox', { name: 'Private note' })).toBeEnabled();
    // Opening it marks it read (after the 800 ms batching).
    await waitFor(() => expect(calls.some((c) => c.key === 'POST /api/v1/conversations/c-wa/read')).toBe(true), {
      timeout: 3000,
    });
    expect(within(row).queryByTestId('unread-badge')).toBeNull();
  });

  it('sends a reply with an Idempotency-Key, and explains a 409 window_closed', async () => {
    const sb = conversation('c-sb');
    let posts = 0;
    const { calls } = mockFetch((_req, key) => {
      if (key === 'GET /api/v1/channels') return json(200, []);
      if (key === 'GET /api/v1/conversations') return json(200, { items: [sb], next_cursor: null });
      if (key === 'GET /api/v1/conversations/counts') return json(200, { mine: 0, unassigned: 1, all: 1 });
      if (key === 'GET /api/v1/conversations/c-sb') return json(200, sb);
      if (key === 'GET /api/v1/conversations/c-sb/messages') return json(200, { items: [], has_more: false });
      if (key === 'GET /api/v1/members') return json(200, { items: [] });
      if (key === 'GET /api/v1/contacts/ct-c-sb') return json(200, contact('ct-c-sb'));
      if (key === 'POST /api/v1/conversations/c-sb/messages') {
        posts++;
        if (posts === 2)
          return json(409, { title: 'Window closed', status: 409, code: 'window_closed', detail: 'outside 24 h' });
        return json(
          202,
          message('m-real', { conversation_id: 'c-sb', direction: 'outbound', status: 'queued', text: 'Hi Ada' }),
        );
      }
      return new Response(null, { status: 204 });
    });
    renderRoutes(routes, '/inbox/c-sb', { me });
    const box = await screen.findByRole('textbox', { name: 'Reply' });
    await userEvent.type(box, 'Hi Ada{Enter}');
    await waitFor(() => expect(posts).toBe(1));
    const sent = calls.find((c) => c.key === 'POST /api/v1/conversations/c-sb/messages')!;
    expect(JSON.parse(sent.body)).toEqual({ type: 'text', text: 'Hi Ada' });
    expect(sent.request.headers.get('Idempotency-Key')).toMatch(/^[0-9a-f-]{36}$/);
    expect(box).toHaveValue('');

    await userEvent.type(box, 'Again{Enter}');
    expect(await screen.findByText('The 24-hour window is closed')).toBeInTheDocument();
    // The text is given back so nothing is lost.
    await waitFor(() => expect(box).toHaveValue('Again'));
  });
});
