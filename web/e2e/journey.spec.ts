/**
 * The onboarding journey of the issue, in one browser session for the owner and a second,
 * separate browser context for the invited teammate.
 */
import { expect, test } from '@playwright/test';

import { PASSWORD, bearer, expectToast, pickOption, unique, uniqueEmail } from './helpers';

test('register → log out → log in → invite → accept in a second context → change role → API key create/revoke', async ({
  page,
  browser,
  request,
  baseURL,
}) => {
  const owner = { email: uniqueEmail('owner'), name: 'Olivia Owner', org: unique('Acme') };
  const mate = { email: uniqueEmail('mate'), name: 'Tom Teammate' };

  await test.step('register', async () => {
    await page.goto('/register');
    await page.getByLabel('Your name').fill(owner.name);
    await page.getByLabel('Organization').fill(owner.org);
    await page.getByLabel('Email').fill(owner.email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create account' }).click();
    await expect(page).toHaveURL(/\/inbox$/);
    await expect(page.getByTestId('org-name')).toHaveText(owner.org);
    await expect(page.getByTestId('user-name')).toHaveText(owner.name);
    // The inbox is the home page (empty for a new organisation).
    await expect(page.getByRole('heading', { name: 'Inbox', level: 2 })).toBeVisible();
    await expect(page.getByTestId('not-built')).toHaveCount(0);
  });

  await test.step('log out', async () => {
    await page.getByTestId('user-menu').click();
    await page.getByRole('menuitem', { name: 'Log out' }).click();
    await expect(page).toHaveURL(/\/login$/);
    // The session is gone: the app sends us back to the login page.
    await page.goto('/settings/profile');
    await expect(page).toHaveURL(/\/login$/);
  });

  await test.step('log in', async () => {
    await page.getByLabel('Email').fill(owner.email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    // Back to where we were heading.
    await expect(page).toHaveURL(/\/settings\/profile$/);
    await expect(page.getByTestId('org-name')).toHaveText(owner.org);
  });

  let inviteUrl = '';
  await test.step('invite a teammate and read the link from the UI', async () => {
    await page.getByRole('navigation', { name: 'Settings' }).getByRole('link', { name: 'Members & roles' }).click();
    await expect(page.getByTestId(`member-row-${owner.email}`)).toBeVisible();
    await page.getByRole('button', { name: 'Invite member' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Email').fill(mate.email);
    await pickOption(page, 'Role', 'Agent');
    await dialog.getByRole('button', { name: 'Create invitation' }).click();
    const link = dialog.getByTestId('invite-link');
    await expect(link).toHaveValue(/\/invite\/[^/]+$/);
    inviteUrl = await link.inputValue();
    await expect(dialog.getByRole('button', { name: 'Copy invite link' })).toBeVisible();
    await dialog.getByRole('button', { name: 'Done' }).click();
    await expect(page.getByTestId(`invitation-row-${mate.email}`)).toBeVisible();
  });

  await test.step('accept the invitation in a second browser context', async () => {
    // The link's origin is the server's public URL; the path is what the app routes.
    const path = new URL(inviteUrl).pathname;
    const ctx = await browser.newContext({ baseURL });
    const mPage = await ctx.newPage();
    try {
      await mPage.goto(path);
      await expect(mPage.getByTestId('invite-org')).toHaveText(owner.org);
      await expect(mPage.getByTestId('invite-inviter')).toHaveText(owner.name);
      await mPage.getByLabel('Your name').fill(mate.name);
      await mPage.getByLabel('Choose a password').fill(PASSWORD);
      await mPage.getByRole('button', { name: 'Create account and join' }).click();
      await expect(mPage).toHaveURL(/\/inbox$/);
      await expect(mPage.getByTestId('org-name')).toHaveText(owner.org);
      await expect(mPage.getByTestId('user-name')).toHaveText(mate.name);
      // An agent sees the settings read-only.
      await mPage.getByRole('link', { name: 'Settings' }).click();
      await mPage.getByRole('navigation', { name: 'Settings' }).getByRole('link', { name: 'Members & roles' }).click();
      await expect(mPage.getByTestId(`member-row-${owner.email}`)).toBeVisible();
      await expect(mPage.getByRole('button', { name: 'Invite member' })).toHaveCount(0);
      await expect(mPage.getByRole('textbox', { name: `Role of ${owner.name}` })).toHaveCount(0);
      await mPage.getByRole('navigation', { name: 'Settings' }).getByRole('link', { name: 'Organization' }).click();
      await expect(mPage.getByLabel('Organization name')).toBeDisabled();
      await mPage.getByRole('navigation', { name: 'Settings' }).getByRole('link', { name: 'API keys' }).click();
      await expect(mPage.getByTestId('api-keys-admin-only')).toBeVisible();
      // The link is single-use.
      await mPage.goto(path);
      await expect(mPage.getByTestId('invite-error')).toContainText(/already used|no longer/i);
    } finally {
      await ctx.close();
    }
  });

  await test.step('the owner makes the teammate an admin', async () => {
    await page.reload();
    const row = page.getByTestId(`member-row-${mate.email}`);
    await expect(row).toBeVisible();
    await expect(page.getByTestId(`invitation-row-${mate.email}`)).toHaveCount(0);
    const roleSelect = page.getByRole('textbox', { name: `Role of ${mate.name}` });
    await expect(roleSelect).toHaveValue('Agent');
    await pickOption(page, `Role of ${mate.name}`, 'Admin');
    await expectToast(page, `${mate.name} is now admin`);
    await page.reload();
    await expect(page.getByRole('textbox', { name: `Role of ${mate.name}` })).toHaveValue('Admin');
    // The only owner cannot be demoted: the UI says so by disabling the select.
    await expect(page.getByRole('textbox', { name: `Role of ${owner.name}` })).toBeDisabled();
  });

  await test.step('create an API key, see it once, use it, revoke it', async () => {
    await page.getByRole('navigation', { name: 'Settings' }).getByRole('link', { name: 'API keys' }).click();
    await expect(page.getByTestId('empty-state')).toBeVisible();
    await page.getByRole('button', { name: 'Create API key' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Name').fill('CRM sync');
    await dialog.getByRole('button', { name: 'Create key' }).click();
    await expect(dialog.getByTestId('api-key-once')).toContainText('only time');
    const secret = await dialog.getByTestId('api-key-secret').inputValue();
    expect(secret).toMatch(/^wam_/);
    await dialog.getByRole('button', { name: 'I have copied it' }).click();

    const row = page.getByTestId('api-key-row-CRM sync');
    await expect(row.getByTestId('api-key-status')).toHaveText('active');
    await expect(row.getByTestId('api-key-last-used')).toHaveText('Never');

    // The key works against the API, and the list then shows it was used.
    const used = await request.get('/api/v1/members', { headers: bearer(secret) });
    expect(used.status()).toBe(200);
    await expect(async () => {
      await page.reload();
      await expect(page.getByTestId('api-key-row-CRM sync').getByTestId('api-key-last-used')).not.toHaveText('Never', {
        timeout: 1000,
      });
    }).toPass({ timeout: 10_000 });

    await page.getByRole('button', { name: 'Revoke CRM sync' }).click();
    await page.getByRole('button', { name: 'Revoke key' }).click();
    await expectToast(page, 'API key CRM sync revoked');
    await expect(page.getByTestId('api-key-row-CRM sync').getByTestId('api-key-status')).toHaveText('revoked');
    const refused = await request.get('/api/v1/members', { headers: bearer(secret) });
    expect(refused.status()).toBe(401);
  });
});
