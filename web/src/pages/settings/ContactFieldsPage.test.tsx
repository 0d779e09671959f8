import { screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';

import type { MeOut } from '../../api/types';
import { json, mockFetch, renderRoutes } from '../../test/render';
import { ContactFieldsPage } from './ContactFieldsPage';

const me = (role: MeOut['role']): MeOut => ({
  user: { id: 'u1', email: 'u@example.com', name: 'U', avatar_url: null, status_text: null, created_at: '' },
  organization: { id: 'o', name: 'Org', created_at: '' },
  role,
});

const T = '2026-01-01T00:00:00Z';

function serve() {
  mockFetch((_req, key) => {
    if (key === 'GET /api/v1/contact-attributes') {
      return json(200, {
        items: [
          {
            key: 'plan',
            label: 'Plan',
            type: 'single_choice',
            options: ['free', 'pro'],
            required: true,
            created_at: T,
            updated_at: T,
          },
        ],
      });
    }
    if (key === 'GET /api/v1/contact-settings') return json(200, { default_country: 'PT' });
    return json(404, { title: 'nope', status: 404, code: 'not_found' });
  });
}

describe('ContactFieldsPage', () => {
  it('lets admins add, edit and delete fields and set the country', async () => {
    serve();
    renderRoutes([{ path: '/f', element: <ContactFieldsPage /> }], '/f', { me: me('admin') });
    expect(await screen.findByTestId('contact-field-plan')).toHaveTextContent('free, pro');
    expect(screen.getByText('Required')).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'New field' })).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Edit Plan' })).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Delete Plan' })).toBeInTheDocument();
    expect(await screen.findByRole('textbox', { name: 'Default phone country' })).toHaveValue('Portugal (PT)');
  });

  it('is read-only for agents', async () => {
    serve();
    renderRoutes([{ path: '/f', element: <ContactFieldsPage /> }], '/f', { me: me('agent') });
    expect(await screen.findByTestId('contact-field-plan')).toBeInTheDocument();
    expect(screen.getByText('Only admins and owners can change contact fields.')).toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'New field' })).not.toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Edit Plan' })).not.toBeInTheDocument();
    expect(await screen.findByRole('textbox', { name: 'Default phone country' })).toBeDisabled();
    expect(screen.queryByRole('button', { name: 'Save country' })).not.toBeInTheDocument();
  });
});
