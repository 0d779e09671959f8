import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';

import type { ContactOut } from '../../api/types';
import { json, mockFetch, renderRoutes } from '../../test/render';
import { ContactDrawer } from './ContactDrawer';

const T = '2026-01-01T00:00:00Z';
const ID = '00000000-0000-0000-0000-000000000001';
const PHOTO = `/api/v1/contact-avatars/o/${ID}/abc.png`;
const base: ContactOut = {
  id: ID,
  name: 'Ana Lima',
  company: null,
  favorite: false,
  blocked: false,
  attributes: {},
  identities: [],
  created_at: T,
  updated_at: T,
  tags: [],
  groups: [],
  avatar_url: null,
};
const me = {
  user: { id: 'u1', email: 'u@example.com', name: 'U', avatar_url: null, status_text: null, created_at: '' },
  organization: { id: 'o', name: 'Org', created_at: '' },
  role: 'agent' as const,
};

/** A fake server holding one contact; `upload` answers the photo upload. */
function serve(upload: () => Response) {
  let contact = { ...base };
  return mockFetch((_req, key) => {
    if (key === `GET /api/v1/contacts/${ID}`) return json(200, contact);
    if (key === `GET /api/v1/contacts/${ID}/consent`) return json(200, { current: [], history: [] });
    if (key === `PUT /api/v1/contacts/${ID}/avatar`) {
      const res = upload();
      if (res.ok) contact = { ...contact, avatar_url: PHOTO };
      return res;
    }
    if (key === `DELETE /api/v1/contacts/${ID}/avatar`) {
      contact = { ...contact, avatar_url: null };
      return new Response(null, { status: 204 });
    }
    return json(200, { items: [] });
  });
}

const render = () => renderRoutes([{ path: '/', element: <ContactDrawer id={ID} onClose={() => {}} /> }], '/', { me });

const fileInput = () => document.querySelector<HTMLInputElement>('input[type=file]')!;
const png = () => new File([new Uint8Array([0x89, 0x50, 0x4e, 0x47])], 'ana.png', { type: 'image/png' });

describe('ContactDrawer photo', () => {
  it('shows initials, uploads a photo as multipart `file`, shows it and removes it', async () => {
    const { calls } = serve(() => json(200, { ...base, avatar_url: PHOTO }));
    render();
    const avatar = await screen.findByTestId('contact-avatar');
    expect(avatar).toHaveTextContent('AL');
    expect(screen.queryByRole('button', { name: 'Remove photo' })).not.toBeInTheDocument();

    await userEvent.upload(fileInput(), png());
    expect(await screen.findByText('Photo updated')).toBeInTheDocument();
    const put = calls.find((c) => c.key === `PUT /api/v1/contacts/${ID}/avatar`)!;
    expect(put.request.headers.get('content-type')).toMatch(/^multipart\/form-data; boundary=/);
    expect(put.body).toMatch(/Content-Disposition: form-data; name="file"/);
    await waitFor(() =>
      expect(within(screen.getByTestId('contact-avatar')).getByRole('img')).toHaveAttribute('src', PHOTO),
    );

    await userEvent.click(screen.getByRole('button', { name: 'Remove photo' }));
    expect(await screen.findByText('Photo removed')).toBeInTheDocument();
    await waitFor(() => expect(screen.getByTestId('contact-avatar')).toHaveTextContent('AL'));
    expect(screen.queryByRole('button', { name: 'Remove photo' })).not.toBeInTheDocument();
  });

  it('refuses a wrong file type before uploading and shows the server refusal', async () => {
    const { calls } = serve(() =>
      json(422, {
        title: 'Validation failed',
        status: 422,
        code: 'validation_failed',
        errors: [{ field: 'file', message: 'must be a PNG, JPEG, GIF or WebP image' }],
      }),
    );
    render();
    await screen.findByTestId('contact-avatar');
    const user = userEvent.setup({ applyAccept: false });
    await user.upload(fileInput(), new File(['<svg/>'], 'x.svg', { type: 'image/svg+xml' }));
    expect(await screen.findByTestId('photo-error')).toHaveTextContent('Use a PNG, JPEG, WebP or GIF image');
    expect(calls.some((c) => c.key.startsWith('PUT'))).toBe(false);

    await user.upload(fileInput(), png());
    expect(await screen.findByText('Could not upload the photo')).toBeInTheDocument();
    expect(screen.getByTestId('photo-error')).not.toHaveTextContent('Use a PNG');
    expect(screen.getByTestId('contact-avatar')).toHaveTextContent('AL');
  });
});
