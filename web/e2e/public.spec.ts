/** The pages a signed-out visitor sees. */
import { expect, test } from '@playwright/test';

import { PASSWORD, bearer, registerViaApi, uniqueEmail } from './helpers';

test('forgot password always answers "check your email"', async ({ page }) => {
  await page.goto('/login');
  await page.getByRole('link', { name: 'Forgot password?' }).click();
  // Router navigations run in a transition: wait for the new page, not just the new URL.
  await expect(page.getByRole('heading', { name: 'Reset your password' })).toBeVisible();
  await page.getByLabel('Email').fill(uniqueEmail('nobody'));
  await page.getByRole('button', { name: 'Send reset link' }).click();
  await expect(page.getByTestId('forgot-sent')).toContainText('Check your email');
});

test('reset password: a link without token, and a bad token', async ({ page }) => {
  await page.goto('/reset-password');
  await expect(page.getByTestId('reset-missing-token')).toBeVisible();

  await page.goto('/reset-password?token=not-a-real-token');
  await page.getByLabel(/^New password/).fill('short');
  await page.getByLabel('Repeat new password').fill('different');
  await page.getByRole('button', { name: 'Set new password' }).click();
  await expect(page.getByText('Use at least 10 characters')).toBeVisible();
  await expect(page.getByText('Passwords do not match')).toBeVisible();

  await page.getByLabel(/^New password/).fill(PASSWORD);
  await page.getByLabel('Repeat new password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Set new password' }).click();
  await expect(page.getByTestId('form-error')).toContainText('Ask for a new link');
  await expect(page).toHaveURL(/\/reset-password/);
});

test('an unknown invitation link says it is not valid', async ({ page }) => {
  await page.goto('/invite/this-token-does-not-exist');
  await expect(page.getByTestId('invite-error')).toContainText(/not valid/i);
});

test('a revoked invitation link says so', async ({ page, request }) => {
  const owner = await registerViaApi(request);
  const created = await request.post('/api/v1/invitations', {
    headers: bearer(owner.access_token),
    data: { email: uniqueEmail('revoked'), role: 'agent' },
  });
  expect(created.status(), await created.text()).toBe(201);
  const inv = (await created.json()) as { id: string; invite_url: string };
  const revoked = await request.delete(`/api/v1/invitations/${inv.id}`, { headers: bearer(owner.access_token) });
  expect(revoked.status()).toBe(204);

  await page.goto(new URL(inv.invite_url).pathname);
  await expect(page.getByTestId('invite-error')).toContainText(/revoked|no longer/i);
});

test('an existing account joins another organization with its password', async ({ page, request }) => {
  const inviter = await registerViaApi(request, 'inviter');
  const joiner = await registerViaApi(request, 'joiner');
  const created = await request.post('/api/v1/invitations', {
    headers: bearer(inviter.access_token),
    data: { email: joiner.user.email, role: 'agent', expires_in_hours: 24 },
  });
  expect(created.status(), await created.text()).toBe(201);
  const inv = (await created.json()) as { invite_url: string };

  await page.goto(new URL(inv.invite_url).pathname);
  await expect(page.getByText('You already have a Wamage account')).toBeVisible();
  await page.getByLabel('Your password').fill('wrong-password-123');
  await page.getByRole('button', { name: 'Join organization' }).click();
  await expect(page.locator('[data-testid="form-error"], .mantine-InputWrapper-error').first()).toBeVisible();
  await page.getByLabel('Your password').fill(joiner.password);
  await page.getByRole('button', { name: 'Join organization' }).click();
  await expect(page).toHaveURL(/\/inbox$/);
  await expect(page.getByTestId('org-name')).toHaveText(inviter.organization.name);
});

test('register and login show the server errors on the form', async ({ page, request }) => {
  const existing = await registerViaApi(request, 'taken');

  await page.goto('/register');
  await page.getByLabel('Your name').fill('Someone');
  await page.getByLabel('Organization').fill('Another org');
  await page.getByLabel('Email').fill(existing.user.email);
  await page.getByLabel('Password').fill('short');
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByText('Use at least 10 characters')).toBeVisible();
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  // 409 email_taken lands under the email input.
  await expect(page.getByLabel('Email')).toHaveAttribute('aria-invalid', 'true');

  await page.getByRole('link', { name: 'Log in' }).click();
  await expect(page.getByRole('heading', { name: 'Log in' })).toBeVisible();
  await page.getByLabel('Email').fill(existing.user.email);
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByTestId('form-error')).toBeVisible();
  await expect(page).toHaveURL(/\/login$/);
});

test('signed-out visitors are sent to the login page', async ({ page }) => {
  for (const path of ['/', '/inbox', '/settings/members']) {
    await page.goto(path);
    await expect(page).toHaveURL(/\/login$/);
  }
});
