import { screen, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';

import { json, mockFetch, renderRoutes } from '../../test/render';
import { MembersPage } from './MembersPage';

const member = (id: string, name: string, role: string) => ({
  user_id: id,
  email: `${name.toLowerCase()}@example.com`,
  name,
  avatar_url: null,
  role,
  joined_at: '2026-01-01T00:00:00Z',
});

describe('MembersPage', () => {
  it('disables what the API would refuse for an admin', async () => {
    mockFetch((_req, key) => {
      if (key === 'GET /api/v1/members') {
        return json(200, {
          items: [member('o1', 'Olga', 'owner'), member('a1', 'Adam', 'admin'), member('g1', 'Gina', 'agent')],
        });
      }
      if (key === 'GET /api/v1/invitations') return json(200, { items: [] });
      return json(404, { type: 'about:blank', title: 'nope', status: 404, code: 'not_found' });
    });
    renderRoutes([{ path: '/m', element: <MembersPage /> }], '/m', {
      me: {
        user: {
          id: 'a1',
          email: 'adam@example.com',
          name: 'Adam',
          avatar_url: null,
          status_text: null,
          created_at: '',
        },
        organization: { id: 'o', name: 'Org', created_at: '' },
        role: 'admin',
      },
    });

    await screen.findByTestId('members-table');
    // Admins can't change an owner's role, but can change an agent's.
    expect(screen.getByRole('textbox', { name: 'Role of Olga' })).toBeDisabled();
    expect(screen.getByRole('textbox', { name: 'Role of Gina' })).toBeEnabled();
    // Admins can't remove the owner nor themselves.
    expect(screen.getByRole('button', { name: 'Remove Olga' })).toBeDisabled();
    expect(screen.getByRole('button', { name: 'Remove Adam' })).toBeDisabled();
    expect(screen.getByRole('button', { name: 'Remove Gina' })).toBeEnabled();
    expect(await screen.findByText(/no pending invitations/i)).toBeInTheDocument();
    expect(within(screen.getByTestId('member-row-gina@example.com')).getByText('gina@example.com')).toBeInTheDocument();
  });
});
