import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';

import type { MeOut } from '../../api/types';
import { json, mockFetch, renderRoutes } from '../../test/render';
import { ContactsPage } from './ContactsPage';

const me = (role: MeOut['role']): MeOut => ({
  user: { id: 'u1', email: 'u@example.com', name: 'U', avatar_url: null, status_text: null, created_at: '' },
  organization: { id: 'o', name: 'Org', created_at: '' },
  role,
});

const T = '2026-01-01T00:00:00Z';
const contact = (n: number) => ({
  id: `00000000-0000-0000-0000-${String(n).padStart(12, '0')}`,
  name: `Person ${n}`,
  company: n === 1 ? 'Acme' : null,
  favorite: n === 1,
  blocked: false,
  attributes: {},
  identities: [{ id: `i${n}`, kind: 'phone', value: `+35191000000${n}`, created_at: T }],
  created_at: T,
  updated_at: T,
  tags: n === 1 ? [{ id: 't1', name: 'VIP', color: '#e03131' }] : [],
  groups: n === 1 ? [{ id: 'g1', name: 'Leads' }] : [],
});

const routes = [{ path: '/contacts/:id?', element: <ContactsPage /> }];

describe('ContactsPage', () => {
  it('shows the empty state with a call to action', async () => {
    mockFetch(() => json(200, { items: [] }));
    renderRoutes(routes, '/contacts', { me: me('agent') });
    expect(await screen.findByText('No contacts yet')).toBeInTheDocument();
    expect(screen.getAllByRole('button', { name: 'New contact' })).toHaveLength(2);
  });

  it('shows an error with a retry', async () => {
    mockFetch(() => json(500, { title: 'Boom', status: 500, code: 'internal' }));
    renderRoutes(routes, '/contacts', { me: me('agent') });
    expect(await screen.findByTestId('error-state')).toHaveTextContent('Boom');
    expect(screen.getByRole('button', { name: 'Try again' })).toBeInTheDocument();
  });

  it('pages with next_cursor and searches with q', async () => {
    const { calls } = mockFetch((req, key) => {
      if (key === 'GET /api/v1/tags' || key === 'GET /api/v1/groups' || key === 'GET /api/v1/segments')
        return json(200, { items: [] });
      const url = new URL(req.url);
      if (url.searchParams.get('q')) return json(200, { items: [contact(3)] });
      if (url.searchParams.get('cursor') === 'c2') return json(200, { items: [contact(2)] });
      return json(200, { items: [contact(1)], next_cursor: 'c2' });
    });
    renderRoutes(routes, '/contacts', { me: me('agent') });
    expect(await screen.findByText('Person 1')).toBeInTheDocument();
    expect(screen.getByText('+351910000001')).toBeInTheDocument();
    expect(screen.getByText('Acme')).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Unstar Person 1' })).toBeInTheDocument();

    await userEvent.click(screen.getByRole('button', { name: 'Load more' }));
    expect(await screen.findByText('Person 2')).toBeInTheDocument();
    expect(screen.getByText('Person 1')).toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Load more' })).not.toBeInTheDocument();

    await userEvent.type(screen.getByRole('textbox', { name: 'Search contacts' }), 'per');
    expect(await screen.findByText('Person 3')).toBeInTheDocument();
    await waitFor(() => expect(screen.queryByText('Person 1')).not.toBeInTheDocument());
    const searches = calls.filter((c) => new URL(c.request.url).searchParams.has('q'));
    // Debounced: one request for the whole word, not one per key.
    expect(searches.map((c) => new URL(c.request.url).searchParams.get('q'))).toEqual(['per']);
    expect(new URL(searches[0]!.request.url).searchParams.get('sort')).toBe('name');
  });

  it('filters by tag from the URL, selects all on the page and tags them in bulk', async () => {
    const { calls } = mockFetch((_req, key) => {
      if (key === 'GET /api/v1/tags')
        return json(200, { items: [{ id: 't1', name: 'VIP', color: '#e03131', created_at: T, updated_at: T }] });
      if (key === 'GET /api/v1/groups' || key === 'GET /api/v1/segments') return json(200, { items: [] });
      if (key === 'POST /api/v1/contacts/bulk') return json(200, { affected: 2 });
      return json(200, { items: [contact(1), contact(2)] });
    });
    renderRoutes(routes, '/contacts?tag=t1', { me: me('agent') });
    expect(await screen.findByText('Person 2')).toBeInTheDocument();
    const list = calls.find((c) => c.key === 'GET /api/v1/contacts');
    expect(new URL(list!.request.url).searchParams.get('tag')).toBe('t1');
    expect(screen.getAllByTestId('tag-chip')[0]).toHaveTextContent('VIP');
    expect(screen.getAllByTestId('group-chip')[0]).toHaveTextContent('Leads');

    await userEvent.click(screen.getByRole('checkbox', { name: 'Select all on page' }));
    expect(screen.getByTestId('bulk-count')).toHaveTextContent('2 selected');
    // Agents get no bulk delete.
    expect(screen.queryByRole('button', { name: 'Delete' })).not.toBeInTheDocument();
    await userEvent.click(screen.getByRole('button', { name: 'Add tag' }));
    await userEvent.click(await screen.findByRole('menuitem', { name: 'VIP' }));
    expect(await screen.findByText('Tagged 2 contacts with VIP')).toBeInTheDocument();
    const bulk = calls.find((c) => c.key === 'POST /api/v1/contacts/bulk');
    expect(JSON.parse(bulk!.body)).toEqual({
      action: 'add_tags',
      contact_ids: [contact(1).id, contact(2).id],
      tag_ids: ['t1'],
    });
    await waitFor(() => expect(screen.queryByTestId('bulk-bar')).not.toBeInTheDocument());
  });
});
