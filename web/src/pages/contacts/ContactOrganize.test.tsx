import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';

import type { ContactOut } from '../../api/types';
import { json, mockFetch, renderRoutes } from '../../test/render';
import { ConsentSection } from './ContactOrganize';

const T = '2026-01-01T00:00:00Z';
const contact: ContactOut = {
  id: '00000000-0000-0000-0000-000000000001',
  name: 'Ana',
  company: null,
  favorite: false,
  blocked: false,
  attributes: {},
  identities: [],
  created_at: T,
  updated_at: T,
  tags: [],
  groups: [],
};
const me = {
  user: { id: 'u1', email: 'u@example.com', name: 'U', avatar_url: null, status_text: null, created_at: '' },
  organization: { id: 'o', name: 'Org', created_at: '' },
  role: 'agent' as const,
};

describe('ConsentSection', () => {
  it('shows the standing state per channel × purpose and the history, and records an opt-out', async () => {
    let history = [
      {
        id: 'c1',
        channel: 'sms',
        purpose: 'utility',
        status: 'opted_in',
        source: 'form',
        at: '2026-01-02T10:00:00Z',
        note: 'web form',
      },
    ];
    const { calls } = mockFetch((_req, key) => {
      if (key.startsWith('POST')) {
        history = [
          {
            id: 'c2',
            channel: 'whatsapp',
            purpose: 'marketing',
            status: 'opted_out',
            source: 'agent',
            at: T,
            note: 'asked',
          },
          ...history,
        ];
        return json(201, history[0]);
      }
      const current = [...history].reverse().reduce<Record<string, (typeof history)[number]>>((acc, h) => {
        acc[`${h.channel}-${h.purpose}`] = h;
        return acc;
      }, {});
      return json(200, { current: Object.values(current), history });
    });
    renderRoutes([{ path: '/', element: <ConsentSection contact={contact} /> }], '/', { me });

    expect(await screen.findByTestId('consent-sms-utility')).toHaveTextContent('Opted in');
    expect(screen.getByTestId('consent-whatsapp-marketing')).toHaveTextContent('Unknown');
    expect(screen.getByTestId('consent-entry')).toHaveTextContent('Form');
    expect(screen.getByTestId('consent-entry')).toHaveTextContent('web form');

    await userEvent.type(screen.getByLabelText('Consent note'), 'asked');
    await userEvent.click(screen.getByRole('button', { name: 'Record opt-out' }));
    expect(await screen.findByText('Opted out: WhatsApp marketing')).toBeInTheDocument();
    const post = calls.find((c) => c.key.startsWith('POST'));
    expect(JSON.parse(post!.body)).toEqual({
      channel: 'whatsapp',
      purpose: 'marketing',
      status: 'opted_out',
      note: 'asked',
    });
    await waitFor(() => expect(screen.getByTestId('consent-whatsapp-marketing')).toHaveTextContent('Opted out'));
    const entries = screen.getAllByTestId('consent-entry');
    expect(entries).toHaveLength(2);
    expect(within(entries[0]!).getByText(/Opted out · WhatsApp marketing/)).toBeInTheDocument();
  });
});
