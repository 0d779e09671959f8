import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';

import type { MeOut } from '../../api/types';
import { campaign, channelOut, counts, template } from '../../lib/campaigns/fixtures';
import { json, mockFetch, renderRoutes, selectOption } from '../../test/render';
import { CampaignWizardPage } from './CampaignWizardPage';

const me: MeOut = {
  user: { id: 'u1', email: 'me@example.com', name: 'Grace', avatar_url: null, status_text: null, created_at: '' },
  organization: { id: 'o', name: 'Org', created_at: '' },
  role: 'owner',
};
const routes = [
  { path: '/campaigns/new', element: <CampaignWizardPage /> },
  { path: '/campaigns/:id/edit', element: <CampaignWizardPage /> },
  { path: '/campaigns/:id', element: <p>campaign page</p> },
  { path: '/campaigns', element: <p>campaign list</p> },
];
const notFound = () => json(404, { title: 'Not found', status: 404, code: 'not_found' });
const breakdown = {
  total: 500,
  eligible: 480,
  opted_out: 20,
  no_consent: 0,
  blocked: 0,
  no_identity: 0,
  missing_variables: 0,
};

function api(onLaunch: (n: number) => Response) {
  let launches = 0;
  return mockFetch((req, key) => {
    const url = new URL(req.url);
    if (key === 'GET /api/v1/channels') return json(200, [channelOut('ch-wa'), channelOut('ch-sb', 'sandbox')]);
    if (key === 'GET /api/v1/templates') {
      expect(url.searchParams.get('channel_id')).toBe('ch-wa');
      expect(url.searchParams.get('status')).toBe('approved');
      return json(200, { items: [template('t1')] });
    }
    if (key === 'GET /api/v1/templates/t1') return json(200, template('t1'));
    if (key === 'GET /api/v1/contact-attributes') return json(200, { items: [] });
    if (key === 'GET /api/v1/contacts') return json(200, { items: [], next_cursor: null });
    if (key === 'GET /api/v1/groups')
      return json(200, { items: [{ id: 'g1', name: 'Spring list', contact_count: 500 }] });
    if (key === 'GET /api/v1/tags') return json(200, { items: [] });
    if (key === 'GET /api/v1/segments') return json(200, { items: [] });
    if (key === 'POST /api/v1/campaigns/audience-preview') return json(200, breakdown);
    if (key === 'POST /api/v1/campaigns') return json(201, campaign('c1', { status: 'draft' }));
    if (key === 'PATCH /api/v1/campaigns/c1') return json(200, campaign('c1', { status: 'draft' }));
    if (key === 'POST /api/v1/campaigns/c1/launch') return onLaunch(++launches);
    return notFound();
  });
}

describe('CampaignWizardPage', () => {
  it('walks channel → template → variables → audience → schedule → review, and explains a refused launch', async () => {
    const { calls } = api((n) =>
      n === 1
        ? json(422, {
            title: 'No eligible recipients',
            status: 422,
            code: 'no_eligible_recipients',
            detail: 'All 500 contacts lack marketing consent.',
          })
        : json(200, campaign('c1', { status: 'running', counts: counts({ total: 500, pending: 500 }) })),
    );
    const { router } = renderRoutes(routes, '/campaigns/new', { me });

    // 1. Channel: a name is needed.
    await userEvent.click(await screen.findByRole('button', { name: 'Next' }));
    expect(screen.getByText('Give the campaign a name')).toBeInTheDocument();
    await userEvent.type(screen.getByRole('textbox', { name: 'Campaign name' }), 'Spring sale');
    await userEvent.click(await screen.findByRole('radio', { name: 'Support WhatsApp' }));
    await userEvent.click(screen.getByRole('button', { name: 'Next' }));

    // 2. Template: only approved ones of the channel, with a preview.
    await userEvent.click(await screen.findByRole('radio', { name: 'spring_sale (en_US)' }));
    expect(await screen.findByTestId('template-preview')).toBeInTheDocument();
    await userEvent.click(screen.getByRole('button', { name: 'Next' }));

    // 3. Variables: prefilled from the template's mapping; fixed ones need a text.
    expect(await screen.findByRole('textbox', { name: 'Fallback for Body {{1}}' })).toHaveValue('there');
    await userEvent.click(screen.getByRole('button', { name: 'Next' }));
    expect(screen.getAllByText('Enter the text to use')).toHaveLength(2);
    await userEvent.type(screen.getByRole('textbox', { name: 'Value for Header {{1}}' }), 'friend');
    await userEvent.type(screen.getByRole('textbox', { name: 'Value for Body {{2}}' }), '20');
    const phone = screen.getByTestId('template-preview');
    expect(within(phone).getByTestId('preview-body')).toHaveTextContent('Hi [First name], 20% off until Sunday!');
    await userEvent.click(screen.getByRole('button', { name: 'Next' }));

    // 4. Audience, with the consent breakdown.
    await userEvent.click(await screen.findByRole('button', { name: 'Next' }));
    expect(screen.getByTestId('audience-error')).toHaveTextContent('Pick at least one group, tag or segment');
    await selectOption('Groups', 'Spring list');
    await waitFor(() => expect(screen.getByTestId('breakdown-eligible-count')).toHaveTextContent('480'));
    expect(screen.getByTestId('breakdown-opted_out-count')).toHaveTextContent('20');
    expect(screen.getByTestId('breakdown-total')).toHaveTextContent('500 contacts');
    await userEvent.click(screen.getByRole('button', { name: 'Next' }));

    // 5. Schedule: now by default.
    expect(await screen.findByRole('radio', { name: /Send now/ })).toBeChecked();
    await userEvent.click(screen.getByRole('button', { name: 'Next' }));

    // 6. Review & launch: the draft is saved, then launched; the refusal says why and where to fix it.
    expect(await screen.findByTestId('review')).toHaveTextContent('Template: spring_sale (en_US, Marketing)');
    await userEvent.click(screen.getByRole('button', { name: 'Launch campaign (480)' }));
    const alert = await screen.findByTestId('launch-problem');
    expect(alert).toHaveTextContent('Nobody in this audience can receive it');
    expect(alert).toHaveTextContent('All 500 contacts lack marketing consent.');
    expect(within(alert).getByRole('button', { name: 'Fix in Audience' })).toBeInTheDocument();
    const created = JSON.parse(calls.find((c) => c.key === 'POST /api/v1/campaigns')!.body);
    expect(created).toEqual({
      name: 'Spring sale',
      channel_id: 'ch-wa',
      template_id: 't1',
      variables: {
        'header.1': { source: 'fixed', value: 'friend' },
        'body.1': { source: 'contact.first_name', fallback: 'there' },
        'body.2': { source: 'fixed', value: '20' },
      },
      audience: { groups: ['g1'], tags: [], segments: [], exclude_groups: [], exclude_tags: [], exclude_segments: [] },
      failure_threshold: 0.2,
    });
    expect(JSON.parse(calls.find((c) => c.key === 'POST /api/v1/campaigns/c1/launch')!.body)).toEqual({});

    // Trying again updates the same draft instead of creating another.
    await userEvent.click(screen.getByRole('button', { name: 'Launch campaign (480)' }));
    await waitFor(() => expect(router.state.location.pathname).toBe('/campaigns/c1'));
    expect(calls.filter((c) => c.key === 'POST /api/v1/campaigns')).toHaveLength(1);
    expect(calls.filter((c) => c.key === 'PATCH /api/v1/campaigns/c1')).toHaveLength(1);
  });

  it('schedules for a wall-clock time in a time zone, refusing one in the past', async () => {
    const draft = campaign('c1', {
      status: 'draft',
      variables: {
        'header.1': { source: 'fixed', value: 'friend' },
        'body.1': { source: 'contact.first_name' },
        'body.2': { source: 'fixed', value: '20' },
      },
    });
    const launched: Request[] = [];
    mockFetch((req, key) => {
      if (key === 'GET /api/v1/campaigns/c1') return json(200, draft);
      if (key === 'GET /api/v1/channels') return json(200, [channelOut('ch-wa')]);
      if (key === 'GET /api/v1/templates') return json(200, { items: [template('t1')] });
      if (key === 'GET /api/v1/templates/t1') return json(200, template('t1'));
      if (key === 'GET /api/v1/contact-attributes') return json(200, { items: [] });
      if (key === 'GET /api/v1/groups') return json(200, { items: [{ id: 'g1', name: 'Spring list' }] });
      if (key === 'GET /api/v1/tags' || key === 'GET /api/v1/segments') return json(200, { items: [] });
      if (key === 'GET /api/v1/contacts') return json(200, { items: [], next_cursor: null });
      if (key === 'POST /api/v1/campaigns/audience-preview') return json(200, breakdown);
      if (key === 'PATCH /api/v1/campaigns/c1') return json(200, draft);
      if (key === 'POST /api/v1/campaigns/c1/launch') {
        launched.push(req);
        return json(200, campaign('c1', { status: 'scheduled' }));
      }
      return notFound();
    });
    const { router } = renderRoutes(routes, '/campaigns/c1/edit', { me });

    // A draft opens on its first step with everything filled in: jump to the schedule.
    expect(await screen.findByRole('textbox', { name: 'Campaign name' })).toHaveValue('Spring sale');
    for (let i = 0; i < 4; i++) await userEvent.click(screen.getByRole('button', { name: 'Next' }));
    await userEvent.click(await screen.findByRole('radio', { name: /Schedule for later/ }));
    const date = screen.getByLabelText(/^Date/);
    const time = screen.getByLabelText(/^Time$|^Time \*/);
    await userEvent.type(date, '2020-01-01');
    await userEvent.type(time, '09:00');
    await selectOption('Time zone', 'Europe/Berlin', 'Berlin');
    await userEvent.click(screen.getByRole('button', { name: 'Next' }));
    expect(screen.getByText('This time is in the past')).toBeInTheDocument();

    await userEvent.clear(date);
    await userEvent.type(date, '2099-12-24');
    await userEvent.click(screen.getByRole('button', { name: 'Next' }));
    await userEvent.click(await screen.findByRole('button', { name: /Schedule campaign/ }));
    await waitFor(() => expect(router.state.location.pathname).toBe('/campaigns/c1'));
    expect(await launched[0]!.json()).toEqual({ scheduled_at: '2099-12-24T09:00', time_zone: 'Europe/Berlin' });
  });
});
