import { randomBytes } from 'node:crypto';

import { expect, type APIRequestContext, type Page } from '@playwright/test';

export const PASSWORD = 'correct-horse-battery';

export function unique(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
}

export function uniqueEmail(prefix: string): string {
  return `${unique(prefix)}@example.com`;
}

export interface Auth {
  access_token: string;
  refresh_token: string;
  expires_in: number;
  user: { id: string; email: string; name: string };
  organization: { id: string; name: string };
  role: string;
}

/** A fresh owner of a fresh organization, made through the API (faster than the form). */
export async function registerViaApi(request: APIRequestContext, who = 'owner'): Promise<Auth & { password: string }> {
  const body = { email: uniqueEmail(who), password: PASSWORD, name: `Test ${who}`, organization: unique('Org') };
  const res = await request.post('/api/v1/auth/register', { data: body });
  expect(res.status(), await res.text()).toBe(201);
  return { ...((await res.json()) as Auth), password: PASSWORD };
}

/** Puts a token pair where the app keeps it, as a login would. */
export async function useSession(
  page: Page,
  auth: Pick<Auth, 'access_token' | 'refresh_token' | 'expires_in'>,
): Promise<void> {
  await page.goto('/login');
  await page.evaluate((a) => {
    window.localStorage.setItem(
      'wamage.auth',
      JSON.stringify({
        access_token: a.access_token,
        refresh_token: a.refresh_token,
        expires_at: Date.now() + a.expires_in * 1000,
      }),
    );
  }, auth);
}

export function bearer(token: string) {
  return { Authorization: `Bearer ${token}` };
}

/** Waits for a Mantine notification containing `text`. */
export async function expectToast(page: Page, text: string | RegExp): Promise<void> {
  await expect(page.locator('.mantine-Notification-root').filter({ hasText: text }).first()).toBeVisible();
}

/** Picks `option` in the Mantine Select labelled `label`. */
export async function pickOption(page: Page, label: string, option: string): Promise<void> {
  await page.getByRole('textbox', { name: label, exact: true }).click();
  await page.getByRole('option', { name: option, exact: true }).click();
}
