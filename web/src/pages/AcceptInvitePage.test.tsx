import { screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';

import { json, mockFetch, renderRoutes } from '../test/render';
import { AcceptInvitePage } from './AcceptInvitePage';

const routes = [{ path: '/invite/:token', element: <AcceptInvitePage /> }];

describe('AcceptInvitePage', () => {
  it.each([
    [410, 'invitation_expired', /has expired/i],
    [410, 'invitation_used', /already used/i],
    [410, 'invitation_revoked', /was revoked/i],
    [404, 'not_found', /not valid/i],
  ])('explains a %i %s', async (status, code, text) => {
    mockFetch(() => json(status, { type: 'about:blank', title: 'x', status, code }));
    renderRoutes(routes, '/invite/tok123');
    expect(await screen.findByTestId('invite-error')).toHaveTextContent(text);
  });

  it('shows who invited whom to which organization, and asks for a name for a new account', async () => {
    const { calls } = mockFetch(() =>
      json(200, {
        organization: { id: 'o', name: 'Acme' },
        email: 'bob@example.com',
        role: 'agent',
        invited_by_name: 'Alice',
        expires_at: '2099-01-01T00:00:00Z',
        account_exists: false,
      }),
    );
    renderRoutes(routes, '/invite/tok123');
    expect(await screen.findByTestId('invite-org')).toHaveTextContent('Acme');
    expect(screen.getByTestId('invite-inviter')).toHaveTextContent('Alice');
    expect(screen.getByLabelText(/your name/i)).toBeInTheDocument();
    expect(calls[0]?.key).toBe('GET /api/v1/auth/invitations/tok123');
  });
});
