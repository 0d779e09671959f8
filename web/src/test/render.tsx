import { MantineProvider } from '@mantine/core';
import { ModalsProvider } from '@mantine/modals';
import { Notifications } from '@mantine/notifications';
import { QueryClientProvider } from '@tanstack/react-query';
import { render } from '@testing-library/react';
import { RouterProvider, createMemoryRouter, type RouteObject } from 'react-router';
import { vi } from 'vitest';

import { qk } from '../api/queries';
import type { MeOut } from '../api/types';
import { createQueryClient } from '../queryClient';
import { theme } from '../theme';

/** Renders `routes` at `path` with the app's providers; returns the router to inspect navigation. */
export function renderRoutes(routes: RouteObject[], path: string, opts: { me?: MeOut } = {}) {
  const queryClient = createQueryClient();
  queryClient.setDefaultOptions({ queries: { retry: false }, mutations: { retry: false } });
  if (opts.me) {
    window.localStorage.setItem(
      'wamage.auth',
      JSON.stringify({ access_token: 'test-access', refresh_token: 'test-refresh', expires_at: 0 }),
    );
    queryClient.setQueryData(qk.me, opts.me);
  }
  const router = createMemoryRouter(routes, { initialEntries: [path] });
  const utils = render(
    <MantineProvider theme={theme}>
      <QueryClientProvider client={queryClient}>
        <ModalsProvider>
          <Notifications />
          <RouterProvider router={router} />
        </ModalsProvider>
      </QueryClientProvider>
    </MantineProvider>,
  );
  return { ...utils, router, queryClient };
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  const type = status >= 400 ? 'application/problem+json' : 'application/json';
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': type, ...headers } });
}

/** Replaces global fetch with a handler keyed by "METHOD /path"; records the requests it saw. */
export function mockFetch(handler: (req: Request, key: string) => Response | Promise<Response>) {
  const calls: { key: string; request: Request; body: string }[] = [];
  const fn = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = input instanceof Request ? input : new Request(String(input), init);
    const key = `${request.method} ${new URL(request.url).pathname}`;
    calls.push({ key, request, body: await request.clone().text() });
    return handler(request, key);
  });
  vi.stubGlobal('fetch', fn);
  return { fn, calls };
}

/**
 * Picks `option` in the Mantine Select / MultiSelect labelled `label`. (In jsdom the dropdown's
 * open transition never finishes, so the options stay "hidden" to role queries; they are clicked
 * all the same, as a user would once it is open.) `search` is typed first, for long searchable lists.
 */
export async function selectOption(label: string, option: string, search?: string): Promise<void> {
  const { screen, waitFor } = await import('@testing-library/react');
  const userEvent = (await import('@testing-library/user-event')).default;
  const input = screen.getByRole('textbox', { name: label });
  await userEvent.click(input);
  if (search !== undefined) {
    await userEvent.clear(input);
    await userEvent.type(input, search);
  }
  const listbox = input.getAttribute('aria-controls');
  let target: HTMLElement | undefined;
  await waitFor(() => {
    target = screen
      .getAllByRole('option', { hidden: true })
      .find((o) => o.textContent?.trim() === option && (!listbox || o.closest('[role="listbox"]')?.id === listbox));
    if (!target) throw new Error(`no option "${option}" for ${label}`);
  });
  await userEvent.click(target!, { pointerEventsCheck: 0 });
}
