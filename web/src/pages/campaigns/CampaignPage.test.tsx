import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it, vi } from 'vitest';

import type { MeOut } from '../../api/types';
import { campaign, counts } from '../../lib/campaigns/fixtures';
import type { RecipientOut } from '../../lib/campaigns/types';
import { json, mockFetch, renderRoutes, selectOption } from '../../test/render';
import { CampaignPage } from './CampaignPage';

const me: MeOut = {
  user: { id: 'u1', email: 'me@example.com', name: 'Grace', avatar_url: null, status_text: null, created_at: '' },
  organization: { id: 'o', name: 'Org', created_at: '' },
  role: 'admin',
};
const routes = [
  { path: '/campaigns/:id', element: <CampaignPage /> },
  { path: '/campaigns/:id/edit', element: <p>wizard</p> },
];
const notFound = () => json(404, { title: 'Not found', status: 404, code: 'not_found' });

const recipient = (n: number, over: Partial<RecipientOut> = {}): RecipientOut => ({
  contact_id: `ct${n}`,
  contact_name: `Contact ${n}`,
  address: `+4915100000${n}`,
  state: 'delivered',
  replied: false,
  error_code: null,
  error_title: null,
  skip_reason: null,
  sent_at: '2026-01-01T09:02:00Z',
  delivered_at: '2026-01-01T09:02:05Z',
  read_at: null,
  replied_at: null,
  failed_at: null,
  ...over,
});

const paused = campaign('c1', {
  status: 'paused',
  pause_reason: 'Paused automatically: 35% of sends failed (threshold 20%)',
  counts: counts({ total: 500, sent: 300, delivered: 280, read: 90, failed: 110, skipped: 20, pending: 70 }),
});
const stats = {
  counts: paused.counts,
  rate_per_second: 0,
  eta_seconds: null,
  failed_by_code: [{ code: 131026, title: 'Message undeliverable', count: 110 }],
  skipped_by_reason: [{ reason: 'opted_out', count: 20 }],
  series: [
    { at: '2026-01-01T09:01:00Z', sent: 200, delivered: 180, read: 50, failed: 60 },
    { at: '2026-01-01T09:03:00Z', sent: 100, delivered: 100, read: 40, failed: 50 },
  ],
};

describe('CampaignPage', () => {
  it('shows why it paused, the numbers, reasons and recipients; resumes, cancels, exports and retargets', async () => {
    let current = paused;
    const { calls } = mockFetch((req, key) => {
      const url = new URL(req.url);
      if (key === 'GET /api/v1/campaigns/c1') return json(200, current);
      if (key === 'GET /api/v1/campaigns/c1/stats') return json(200, stats);
      if (key === 'GET /api/v1/campaigns/c1/recipients') {
        if (url.searchParams.get('state') === 'failed')
          return json(200, {
            items: [recipient(9, { state: 'failed', error_code: 131026, error_title: 'Message undeliverable' })],
            next_cursor: null,
          });
        if (url.searchParams.get('cursor') === 'n1') return json(200, { items: [recipient(3)], next_cursor: null });
        return json(200, {
          items: [recipient(1), recipient(2, { state: 'skipped', skip_reason: 'opted_out' })],
          next_cursor: 'n1',
        });
      }
      if (key === 'POST /api/v1/campaigns/c1/resume')
        return json(200, (current = { ...current, status: 'running', pause_reason: null }));
      if (key === 'POST /api/v1/campaigns/c1/cancel') return json(200, (current = { ...current, status: 'cancelled' }));
      if (key === 'GET /api/v1/campaigns/c1/export')
        return new Response('contact,state\nContact 1,delivered\n', {
          headers: { 'Content-Type': 'text/csv', 'Content-Disposition': 'attachment; filename="spring-sale.csv"' },
        });
      if (key === 'POST /api/v1/campaigns/c1/retarget')
        return json(
          201,
          campaign('c2', {
            status: 'draft',
            audience: { ...current.audience, from_campaign: { campaign_id: 'c1', slice: 'failed' } },
          }),
        );
      return notFound();
    });
    const createObjectURL = vi.fn(() => 'blob:csv');
    // jsdom has no object URLs (this file's environment is its own).
    Object.assign(URL, { createObjectURL, revokeObjectURL: vi.fn() });
    const { router } = renderRoutes(routes, '/campaigns/c1', { me });

    expect(await screen.findByTestId('pause-reason')).toHaveTextContent('35% of sends failed (threshold 20%)');
    expect(screen.getAllByTestId('campaign-status')[0]).toHaveAttribute('data-status', 'paused');
    expect(screen.getByTestId('count-sent')).toHaveTextContent('300');
    expect(screen.getByTestId('count-failed')).toHaveTextContent('110');
    expect(screen.getByTestId('campaign-progress-label')).toHaveTextContent('430 / 500');
    expect(screen.getByRole('progressbar', { name: 'Campaign progress' })).toHaveAttribute('aria-valuenow', '86');
    expect(await screen.findByTestId('status-chart')).toBeInTheDocument();
    expect(within(screen.getByTestId('failed-by-code')).getByText('Message undeliverable')).toBeInTheDocument();
    expect(screen.getByTestId('skipped-opted_out')).toHaveTextContent('Opted out20');

    // Recipients: cursor paging, then a state filter.
    await waitFor(() => expect(screen.getAllByTestId('recipient-row')).toHaveLength(2));
    expect(screen.getAllByTestId('recipient-row')[1]).toHaveTextContent('Opted out');
    await userEvent.click(screen.getByRole('button', { name: 'Load more' }));
    await waitFor(() => expect(screen.getAllByTestId('recipient-row')).toHaveLength(3));
    expect(screen.queryByRole('button', { name: 'Load more' })).toBeNull();
    await selectOption('Recipient state', 'Failed');
    await waitFor(() => expect(screen.getAllByTestId('recipient-row')).toHaveLength(1));
    expect(screen.getByTestId('recipient-row')).toHaveTextContent('Message undeliverable (131026)');

    // Export through the API client (bearer token), saved under the server's file name.
    await userEvent.click(screen.getByRole('button', { name: 'Export CSV' }));
    await waitFor(() => expect(createObjectURL).toHaveBeenCalled());
    const exported = calls.find((c) => c.key === 'GET /api/v1/campaigns/c1/export')!;
    expect(exported.request.headers.get('Authorization')).toBe('Bearer test-access');

    await userEvent.click(screen.getByRole('button', { name: 'Resume' }));
    expect(await screen.findByRole('button', { name: 'Pause' })).toBeInTheDocument();
    expect(screen.queryByTestId('pause-reason')).toBeNull();

    // Cancelling asks first.
    await userEvent.click(screen.getByRole('button', { name: 'Cancel campaign' }));
    const dialog = await screen.findByRole('dialog');
    expect(calls.some((c) => c.key === 'POST /api/v1/campaigns/c1/cancel')).toBe(false);
    await userEvent.click(within(dialog).getByRole('button', { name: 'Cancel campaign' }));
    await waitFor(() =>
      expect(screen.getAllByTestId('campaign-status')[0]).toHaveAttribute('data-status', 'cancelled'),
    );

    // Retarget the failed ones into a new draft.
    await userEvent.click(screen.getByRole('button', { name: 'Retarget' }));
    await userEvent.click(await screen.findByRole('menuitem', { name: 'Failed' }));
    await waitFor(() => expect(router.state.location.pathname).toBe('/campaigns/c2/edit'));
    expect(JSON.parse(calls.find((c) => c.key === 'POST /api/v1/campaigns/c1/retarget')!.body)).toEqual({
      slice: 'failed',
      name: 'Spring sale – failed',
    });
  });

  it('shows the live rate and time left while running', async () => {
    const running = campaign('c1', {
      counts: counts({ total: 500, sent: 100, delivered: 90, pending: 400 }),
      rate_per_second: 40,
      eta_seconds: 10,
    });
    mockFetch((_req, key) => {
      if (key === 'GET /api/v1/campaigns/c1') return json(200, running);
      if (key === 'GET /api/v1/campaigns/c1/stats')
        return json(200, {
          ...stats,
          counts: counts({ total: 500, sent: 160, delivered: 150, pending: 340 }),
          rate_per_second: 40,
          eta_seconds: 9,
        });
      if (key === 'GET /api/v1/campaigns/c1/recipients') return json(200, { items: [], next_cursor: null });
      return notFound();
    });
    renderRoutes(routes, '/campaigns/c1', { me });
    // The stats are newer than the campaign: their numbers win.
    await waitFor(() => expect(screen.getByTestId('count-sent')).toHaveTextContent('160'));
    expect(screen.getByTestId('campaign-rate')).toHaveTextContent('40 msg/s');
    expect(screen.getByTestId('campaign-eta')).toHaveTextContent('less than a minute');
    expect(screen.getByRole('button', { name: 'Pause' })).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Cancel campaign' })).toBeInTheDocument();
  });
});
