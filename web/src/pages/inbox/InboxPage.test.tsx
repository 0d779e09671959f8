import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it, vi } from 'vitest';

import type { MeOut } from '../../api/types';
import { SocketProvider } from '../../chat/SocketProvider';
import { template } from '../../lib/campaigns/fixtures';
import { conversation, message } from '../../lib/inbox/fixtures';
import { json, mockFetch, renderRoutes, selectOption } from '../../test/render';
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

  describe('sending a template', () => {
    const wa = conversation('c-wa', {
      channel: { id: 'w1', kind: 'whatsapp', name: 'Support WhatsApp' },
      window: { open: false, expires_at: '2026-01-01T00:00:00Z' },
    });
    const orderUpdate = template('t-order', {
      channel: { id: 'w1', name: 'Support WhatsApp', kind: 'whatsapp' },
      name: 'order_update',
      category: 'UTILITY',
      components: {
        header: { format: 'text', text: 'Order {{1}}', example: 'A-1' },
        body: { text: 'Hi {{1}}, your order ships {{2}}.', examples: ['Ada', 'today'] },
        footer: 'Thanks for shopping',
        buttons: [{ type: 'url', text: 'Track', url: 'https://ex.com/t/{{1}}', example: 'A-1' }],
      },
      variables: ['header.1', 'body.1', 'body.2', 'button.0'],
    });
    const other = template('t-other', {
      channel: { id: 'w1', name: 'Support WhatsApp', kind: 'whatsapp' },
      name: 'spring_sale',
      language: 'de',
    });

    function serve(conv: typeof wa, templates: unknown[], preview?: unknown) {
      const id = conv.id;
      return mockFetch((_req, key) => {
        if (key === 'GET /api/v1/channels') return json(200, []);
        if (key === 'GET /api/v1/conversations') return json(200, { items: [conv], next_cursor: null });
        if (key === 'GET /api/v1/conversations/counts') return json(200, { mine: 0, unassigned: 1, all: 1 });
        if (key === `GET /api/v1/conversations/${id}`) return json(200, conv);
        if (key === `GET /api/v1/conversations/${id}/messages`) return json(200, { items: [], has_more: false });
        if (key === 'GET /api/v1/members') return json(200, { items: [] });
        if (key === `GET /api/v1/contacts/ct-${id}`) return json(200, contact(`ct-${id}`));
        if (key === 'GET /api/v1/templates') return json(200, { items: templates });
        if (key.startsWith('POST /api/v1/templates/') && key.endsWith('/preview')) return json(200, preview);
        if (key === `POST /api/v1/conversations/${id}/messages`)
          return json(202, message('m-real', { conversation_id: id, direction: 'outbound', status: 'queued' }));
        return new Response(null, { status: 204 });
      });
    }

    it('picks an approved template of the channel, fills its variables for the contact and sends it', async () => {
      const { calls } = serve(wa, [other, orderUpdate], {
        header: { format: 'text', text: 'Order A-1042' },
        body: 'Hi Ada, your order ships {{2}}.',
        footer: 'Thanks for shopping',
        buttons: [{ type: 'url', text: 'Track', url: 'https://ex.com/t/A-1042' }],
        missing: ['body.2'],
        values: { 'header.1': 'A-1042', 'body.1': 'Ada', 'button.0': 'A-1042' },
      });
      renderRoutes(routes, '/inbox/c-wa', { me });
      // The window is closed: the reply box is off, templates are the way.
      expect(await screen.findByRole('textbox', { name: 'Reply' })).toBeDisabled();
      await userEvent.click(screen.getByRole('button', { name: 'Templates' }));
      const dialog = await screen.findByRole('dialog', { name: 'Send a template' });
      await within(dialog).findByRole('textbox', { name: 'Template' });
      const list = calls.find((c) => c.key === 'GET /api/v1/templates')!;
      expect(new URL(list.request.url).searchParams.get('channel_id')).toBe('w1');
      expect(new URL(list.request.url).searchParams.get('status')).toBe('approved');

      await selectOption('Template', 'order_update en_USUtility', 'order en');
      const previewCall = await waitFor(() => {
        const c = calls.find((x) => x.key === 'POST /api/v1/templates/t-order/preview');
        expect(c).toBeDefined();
        return c!;
      });
      expect(JSON.parse(previewCall.body)).toEqual({ contact_id: 'ct-c-wa' });
      expect(within(dialog).getByTestId('template-category')).toHaveTextContent('Utility');

      // Prefilled from the preview's values; the missing one is asked for.
      const body2 = await within(dialog).findByRole('textbox', { name: 'Body {{2}}' });
      expect(within(dialog).getByRole('textbox', { name: 'Header {{1}}' })).toHaveValue('A-1042');
      expect(within(dialog).getByRole('textbox', { name: 'Body {{1}}' })).toHaveValue('Ada');
      expect(within(dialog).getByRole('textbox', { name: 'Button 1 (URL suffix)' })).toHaveValue('A-1042');
      expect(body2).toHaveValue('');
      expect(body2).toHaveAttribute('data-missing', 'true');
      const phone = within(dialog).getByTestId('template-send-preview');
      expect(within(phone).getByTestId('preview-body')).toHaveTextContent('Hi Ada, your order ships {{2}}.');

      await userEvent.click(within(dialog).getByRole('button', { name: 'Send template' }));
      expect(await within(dialog).findByText('Enter a value')).toBeInTheDocument();
      expect(calls.some((c) => c.key === 'POST /api/v1/conversations/c-wa/messages')).toBe(false);

      // Edits re-render the preview at once.
      await userEvent.type(body2, 'tomorrow');
      expect(within(phone).getByTestId('preview-body')).toHaveTextContent('Hi Ada, your order ships tomorrow.');
      await userEvent.click(within(dialog).getByRole('button', { name: 'Send template' }));
      await waitFor(() => expect(calls.some((c) => c.key === 'POST /api/v1/conversations/c-wa/messages')).toBe(true));
      const sent = calls.find((c) => c.key === 'POST /api/v1/conversations/c-wa/messages')!;
      expect(JSON.parse(sent.body)).toEqual({
        type: 'template',
        template: {
          name: 'order_update',
          language: 'en_US',
          header: ['A-1042'],
          body: ['Ada', 'tomorrow'],
          button_params: [{ sub_type: 'url', index: 0, value: 'A-1042' }],
        },
      });
      await waitFor(() => expect(screen.queryByRole('dialog', { name: 'Send a template' })).toBeNull());
    });

    it('sends a Sandbox (local) template as its rendered text', async () => {
      const sb = conversation('c-sb');
      const local = template('t-local', {
        channel: { id: 'ch-1', name: 'Sandbox', kind: 'sandbox' },
        kind: 'local',
        name: 'welcome',
        language: 'en',
        category: 'UTILITY',
        components: { header: null, body: { text: 'Hi {{1}}, welcome!', examples: [] }, footer: null, buttons: [] },
        variables: ['body.1'],
      });
      const { calls } = serve(sb, [local], {
        header: null,
        body: 'Hi Ada, welcome!',
        footer: null,
        buttons: [],
        missing: [],
        values: { 'body.1': 'Ada' },
      });
      renderRoutes(routes, '/inbox/c-sb', { me });
      await userEvent.click(await screen.findByRole('button', { name: 'Templates' }));
      const dialog = await screen.findByRole('dialog', { name: 'Send a template' });
      await within(dialog).findByRole('textbox', { name: 'Template' });
      await selectOption('Template', 'welcome enUtility');
      expect(await within(dialog).findByRole('textbox', { name: 'Body {{1}}' })).toHaveValue('Ada');
      expect(within(dialog).getByText('Sent as a text message with the variables filled in.')).toBeInTheDocument();
      await userEvent.click(within(dialog).getByRole('button', { name: 'Send template' }));
      await waitFor(() => expect(calls.some((c) => c.key === 'POST /api/v1/conversations/c-sb/messages')).toBe(true));
      const sent = calls.find((c) => c.key === 'POST /api/v1/conversations/c-sb/messages')!;
      expect(JSON.parse(sent.body)).toEqual({ type: 'text', text: 'Hi Ada, welcome!' });
    });

    it('explains when the channel has no approved template, with a link to create one', async () => {
      serve(wa, []);
      renderRoutes(routes, '/inbox/c-wa', { me });
      await userEvent.click(await screen.findByRole('button', { name: 'Templates' }));
      const dialog = await screen.findByRole('dialog', { name: 'Send a template' });
      const empty = await within(dialog).findByTestId('templates-empty');
      expect(empty).toHaveTextContent('Support WhatsApp has no approved templates yet.');
      expect(within(empty).getByRole('link', { name: 'Create a template' })).toHaveAttribute('href', '/templates/new');
    });
  });
});
