import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';

import { json, mockFetch, renderRoutes } from '../test/render';

// Mantine links an input to its error text with aria-describedby (with the description, if any).
import { RegisterPage } from './RegisterPage';

const routes = [
  { path: '/register', element: <RegisterPage /> },
  { path: '/inbox', element: <p>inbox page</p> },
];

async function fill(user: ReturnType<typeof userEvent.setup>, password = 'long-enough-pw') {
  await user.type(screen.getByLabelText(/your name/i), 'Ada Lovelace');
  await user.type(screen.getByLabelText(/organization/i), 'Analytical Engines');
  await user.type(screen.getByLabelText(/^email/i), 'ada@example.com');
  await user.type(screen.getByLabelText(/^password/i), password);
  await user.click(screen.getByRole('button', { name: /create account/i }));
}

describe('RegisterPage', () => {
  it('shows the field errors of a 422 problem under the matching inputs', async () => {
    mockFetch(() =>
      json(422, {
        type: 'about:blank',
        title: 'Validation failed',
        status: 422,
        code: 'validation_failed',
        errors: [
          { field: 'email', message: 'is not deliverable' },
          { field: 'organization', message: 'is too long' },
        ],
      }),
    );
    const user = userEvent.setup();
    renderRoutes(routes, '/register');
    await fill(user);

    const email = screen.getByLabelText(/^email/i);
    await waitFor(() => expect(email).toHaveAttribute('aria-invalid', 'true'));
    expect(email).toHaveAccessibleDescription(expect.stringContaining('is not deliverable'));
    expect(screen.getByLabelText(/organization/i)).toHaveAccessibleDescription(expect.stringContaining('is too long'));
    expect(screen.getByLabelText(/your name/i)).not.toHaveAttribute('aria-invalid', 'true');
    // Every error found its input, so there is no form-level alert.
    expect(screen.queryByTestId('form-error')).not.toBeInTheDocument();
  });

  it('puts a 409 email_taken under the email input', async () => {
    mockFetch(() =>
      json(409, { type: 'about:blank', title: 'Email already registered', status: 409, code: 'email_taken' }),
    );
    const user = userEvent.setup();
    renderRoutes(routes, '/register');
    await fill(user);
    await waitFor(() =>
      expect(screen.getByLabelText(/^email/i)).toHaveAccessibleDescription(
        expect.stringContaining('Email already registered'),
      ),
    );
  });

  it('checks the password length before calling the API', async () => {
    const { fn } = mockFetch(() => json(500, {}));
    const user = userEvent.setup();
    renderRoutes(routes, '/register');
    await fill(user, 'short');
    await waitFor(() =>
      expect(screen.getByLabelText(/^password/i)).toHaveAccessibleDescription(
        expect.stringContaining('Use at least 10 characters'),
      ),
    );
    expect(fn).not.toHaveBeenCalled();
  });

  it('stores the tokens and goes to the inbox on success', async () => {
    const { calls } = mockFetch(() =>
      json(201, {
        access_token: 'acc',
        refresh_token: 'ref',
        token_type: 'Bearer',
        expires_in: 900,
        user: {
          id: 'u',
          email: 'ada@example.com',
          name: 'Ada Lovelace',
          avatar_url: null,
          status_text: null,
          created_at: '2026-01-01T00:00:00Z',
        },
        organization: { id: 'o', name: 'Analytical Engines', created_at: '2026-01-01T00:00:00Z' },
        role: 'owner',
      }),
    );
    const user = userEvent.setup();
    const { router } = renderRoutes(routes, '/register');
    await fill(user);
    await waitFor(() => expect(router.state.location.pathname).toBe('/inbox'));
    expect(calls[0]?.key).toBe('POST /api/v1/auth/register');
    expect(JSON.parse(calls[0]?.body ?? '')).toEqual({
      email: 'ada@example.com',
      password: 'long-enough-pw',
      name: 'Ada Lovelace',
      organization: 'Analytical Engines',
    });
    expect(JSON.parse(window.localStorage.getItem('wamage.auth') ?? '{}')).toMatchObject({
      access_token: 'acc',
      refresh_token: 'ref',
    });
  });
});
