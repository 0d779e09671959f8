import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';

import type { MeOut } from '../../api/types';
import { channelOut, template } from '../../lib/campaigns/fixtures';
import { json, mockFetch, renderRoutes, selectOption } from '../../test/render';
import { TemplatesPage } from './TemplatesPage';

const me: MeOut = {
  user: { id: 'u1', email: 'me@example.com', name: 'Grace', avatar_url: null, status_text: null, created_at: '' },
  organization: { id: 'o', name: 'Org', created_at: '' },
  role: 'admin',
};
const routes = [
  { path: '/templates', element: <TemplatesPage /> },
  { path: '/templates/:id', element: <p>builder</p> },
];

describe('TemplatesPage', () => {
  it('groups languages under one name, shows review states, filters by channel and syncs from WhatsApp', async () => {
    let list = [
      template('t1', { language: 'en_US', status: 'approved' }),
      template('t2', { language: 'de', status: 'rejected', rejected_reason: 'Looks like spam' }),
      template('t3', {
        name: 'welcome',
        status: 'approved',
        kind: 'local',
        channel: { id: 'ch-sb', name: 'Sandbox', kind: 'sandbox' },
      }),
    ];
    const { calls } = mockFetch((req, key) => {
      const url = new URL(req.url);
      if (key === 'GET /api/v1/channels') return json(200, [channelOut('ch-wa'), channelOut('ch-sb', 'sandbox')]);
      if (key === 'GET /api/v1/templates') {
        const ch = url.searchParams.get('channel_id');
        return json(200, { items: list.filter((t) => !ch || t.channel.id === ch) });
      }
      if (key === 'POST /api/v1/templates/sync') {
        list = [...list, template('t4', { name: 'order_update', status: 'approved' })];
        return json(200, { imported: 1, updated: 2, total: 3 });
      }
      return json(404, { title: 'Not found', status: 404, code: 'not_found' });
    });
    const { router } = renderRoutes(routes, '/templates', { me });

    const rows = await screen.findAllByTestId('template-row');
    expect(rows.map((r) => `${r.dataset.name}/${r.dataset.language}`)).toEqual([
      'spring_sale/de',
      'spring_sale/en_US',
      'welcome/en_US',
    ]);
    // The name cell spans its languages.
    expect(within(rows[0]!).getByRole('link', { name: 'spring_sale' })).toBeInTheDocument();
    expect(within(rows[1]!).queryByRole('link', { name: 'spring_sale' })).toBeNull();
    expect(within(rows[0]!).getByTestId('template-status')).toHaveAttribute('data-status', 'rejected');
    expect(within(rows[2]!).getByTestId('template-status')).toHaveTextContent('Ready');

    await userEvent.click(screen.getByRole('button', { name: 'Sync from WhatsApp' }));
    expect(await screen.findByTestId('sync-result')).toHaveTextContent(
      'Support WhatsApp: 1 imported, 2 updated, 3 on WhatsApp.',
    );
    expect(JSON.parse(calls.find((c) => c.key === 'POST /api/v1/templates/sync')!.body)).toEqual({
      channel_id: 'ch-wa',
    });
    await waitFor(() => expect(screen.getAllByTestId('template-row')).toHaveLength(4));

    await selectOption('Channel', 'Sandbox');
    await waitFor(() => expect(screen.getAllByTestId('template-row')).toHaveLength(1));
    expect(router.state.location.search).toBe('?channel=ch-sb');

    await userEvent.click(screen.getByRole('link', { name: 'welcome' }));
    expect(router.state.location.pathname).toBe('/templates/t3');
  });

  it('guides a first template', async () => {
    mockFetch((_req, key) => {
      if (key === 'GET /api/v1/channels') return json(200, []);
      if (key === 'GET /api/v1/templates') return json(200, { items: [] });
      return json(404, { title: 'Not found', status: 404, code: 'not_found' });
    });
    renderRoutes(routes, '/templates', { me });
    expect(await screen.findByText('No templates yet')).toBeInTheDocument();
    expect(screen.getAllByRole('link', { name: 'New template' })[0]).toHaveAttribute('href', '/templates/new');
    expect(screen.queryByRole('button', { name: 'Sync from WhatsApp' })).toBeNull();
  });
});
