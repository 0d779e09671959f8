/** Every page of the signed-in app, for a fresh owner. */
import { expect, test, type Page } from '@playwright/test';

import { PASSWORD, expectToast, registerViaApi, useSession, type Auth } from './helpers';

let owner: Auth & { password: string };

test.beforeEach(async ({ page, request }) => {
  owner = await registerViaApi(request);
  await useSession(page, owner);
});

const settingsNav = (page: Page) => page.getByRole('navigation', { name: 'Settings' });

test('placeholder sections say they are not built yet; contacts, the inbox, templates and campaigns are built', async ({
  page,
}) => {
  await page.goto('/inbox');
  // The inbox is built: an empty inbox guides a new organization.
  await expect(page.getByRole('heading', { name: 'Inbox', level: 2 })).toBeVisible();
  await expect(page.getByText('No conversations yet — connect a channel or try the Sandbox')).toBeVisible();
  await expect(page.getByTestId('not-built')).toHaveCount(0);
  const nav = page.getByRole('navigation', { name: 'Main navigation' });
  await nav.getByRole('link', { name: 'Workflows' }).click();
  await expect(page.getByRole('heading', { name: 'Workflows', level: 2 })).toBeVisible();
  await expect(page.getByTestId('not-built')).toContainText('Not built yet');
  // Templates and campaigns are built: empty lists that guide a first one.
  for (const [name, empty] of [
    ['Templates', 'No templates yet'],
    ['Campaigns', 'No campaigns yet'],
  ] as const) {
    await nav.getByRole('link', { name }).click();
    await expect(page.getByRole('heading', { name, level: 2 })).toBeVisible();
    await expect(page.getByText(empty)).toBeVisible();
    await expect(page.getByTestId('not-built')).toHaveCount(0);
  }
  // Contacts is built: an empty contact book, no placeholder.
  await page.getByRole('navigation', { name: 'Main navigation' }).getByRole('link', { name: 'Contacts' }).click();
  await expect(page.getByRole('heading', { name: 'Contacts', level: 2 })).toBeVisible();
  await expect(page.getByText('No contacts yet')).toBeVisible();
  await expect(page.getByTestId('not-built')).toHaveCount(0);
  await page.goto('/no-such-page');
  await expect(page.getByTestId('not-found')).toBeVisible();
});

test('an expired access token is refreshed once and the rotated pair is stored', async ({ page }) => {
  await page.evaluate(() => {
    const a = JSON.parse(window.localStorage.getItem('wamage.auth') ?? '{}') as Record<string, unknown>;
    window.localStorage.setItem('wamage.auth', JSON.stringify({ ...a, access_token: 'garbage' }));
  });
  await page.goto('/settings/organization');
  await expect(page.getByLabel('Organization name')).toHaveValue(owner.organization.name);
  const stored = await page.evaluate(
    () => JSON.parse(window.localStorage.getItem('wamage.auth') ?? '{}') as Record<string, string>,
  );
  expect(stored.access_token).not.toBe('garbage');
  expect(stored.refresh_token).not.toBe(owner.refresh_token);

  // With a dead refresh token too, the app gives up and goes to the login page.
  await page.evaluate(() => {
    window.localStorage.setItem(
      'wamage.auth',
      JSON.stringify({ access_token: 'garbage', refresh_token: 'dead', expires_at: 0 }),
    );
  });
  await page.goto('/settings/organization');
  await expect(page).toHaveURL(/\/login$/);
});

test('profile: name, status, avatar, password', async ({ page, request }) => {
  await page.goto('/settings');
  await expect(page).toHaveURL(/\/settings\/profile$/);

  await page.getByLabel('Display name').fill('Renamed Owner');
  await page.getByLabel('Status').fill('Back on Monday');
  await page.getByRole('button', { name: 'Save profile' }).click();
  await expectToast(page, 'Profile saved');
  await expect(page.getByTestId('user-name')).toHaveText('Renamed Owner');

  // A 1×1 PNG.
  const png = Buffer.from(
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
    'base64',
  );
  const chooser = page.waitForEvent('filechooser');
  await page.getByRole('button', { name: 'Choose image' }).click();
  await (await chooser).setFiles({ name: 'me.png', mimeType: 'image/png', buffer: png });
  await expect(page.getByTestId('avatar-hint')).toContainText('Preview of me.png');
  await expect(page.getByTestId('avatar-preview').locator('img')).toHaveAttribute('src', /^blob:/);
  await page.getByRole('button', { name: 'Upload' }).click();
  await expectToast(page, 'Avatar updated');
  const img = page.getByTestId('avatar-preview').locator('img');
  await expect(img).toHaveAttribute('src', /^(?!blob:)/);
  const src = await img.getAttribute('src');
  const fetched = await request.get(src!);
  expect(fetched.status()).toBe(200);
  await page.getByRole('button', { name: 'Remove' }).click();
  await expectToast(page, 'Avatar removed');
  await expect(page.getByTestId('avatar-preview').locator('img')).toHaveCount(0);

  // Too big: refused before upload.
  const chooser2 = page.waitForEvent('filechooser');
  await page.getByRole('button', { name: 'Choose image' }).click();
  await (
    await chooser2
  ).setFiles({ name: 'big.png', mimeType: 'image/png', buffer: Buffer.alloc(2 * 1024 * 1024 + 1) });
  await expect(page.getByTestId('avatar-hint')).toContainText('2 MB or smaller');

  await page.getByLabel('Current password').fill('wrong-password-here');
  await page.getByLabel(/^New password/).fill('another-long-password');
  await page.getByLabel('Repeat new password').fill('another-long-password');
  await page.getByRole('button', { name: 'Change password' }).click();
  await expect(page.locator('[data-testid="form-error"], .mantine-InputWrapper-error').first()).toBeVisible();

  await page.getByLabel('Current password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Change password' }).click();
  await expectToast(page, 'Password changed');
  const login = await request.post('/api/v1/auth/login', {
    data: { email: owner.user.email, password: 'another-long-password' },
  });
  expect(login.status()).toBe(200);
});

test('organization: rename', async ({ page }) => {
  await page.goto('/settings/organization');
  await page.getByLabel('Organization name').fill('Renamed Org');
  await page.getByRole('button', { name: 'Save' }).click();
  await expectToast(page, 'Organization renamed');
  await expect(page.getByTestId('org-name')).toHaveText('Renamed Org');
  await page.reload();
  await expect(page.getByLabel('Organization name')).toHaveValue('Renamed Org');
});

test('members: the only owner cannot be demoted or removed; invitations can be revoked', async ({ page }) => {
  await page.goto('/settings/members');
  const me = page.getByTestId(`member-row-${owner.user.email}`);
  await expect(me).toContainText('You');
  await expect(page.getByRole('textbox', { name: `Role of ${owner.user.name}` })).toBeDisabled();
  await expect(page.getByRole('button', { name: `Remove ${owner.user.name}` })).toBeDisabled();
  await expect(page.getByText('No pending invitations')).toBeVisible();

  await page.getByRole('button', { name: 'Invite member' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('Email').fill('not-an-email');
  await dialog.getByRole('button', { name: 'Create invitation' }).click();
  await expect(dialog.getByText('Enter a valid email address')).toBeVisible();
  await dialog.getByLabel('Email').fill('later@example.com');
  await dialog.getByRole('button', { name: 'Create invitation' }).click();
  await expect(dialog.getByTestId('invite-link')).toHaveValue(/\/invite\//);
  await dialog.getByRole('button', { name: 'Done' }).click();

  await page.getByRole('button', { name: 'Revoke invitation for later@example.com' }).click();
  await page.getByRole('button', { name: 'Revoke', exact: true }).click();
  await expectToast(page, 'Invitation for later@example.com revoked');
  await expect(page.getByText('No pending invitations')).toBeVisible();
});

test('teams: create, add and remove a member, rename, delete', async ({ page }) => {
  await page.goto('/settings/teams');
  await expect(page.getByText('No teams yet')).toBeVisible();
  await page.getByRole('button', { name: 'New team' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('Name').fill('Support');
  await dialog.getByLabel('Description').fill('First line');
  await dialog.getByRole('button', { name: 'Create team' }).click();
  await expectToast(page, 'Team Support created');
  await expect(page.getByRole('heading', { name: 'Support' })).toBeVisible();
  await expect(page.getByText('Nobody in this team yet')).toBeVisible();

  await page.getByRole('textbox', { name: 'Add a member' }).click();
  await page.getByRole('option', { name: new RegExp(owner.user.email) }).click();
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  await expectToast(page, 'Added to the team');
  await expect(page.getByTestId(`team-member-${owner.user.email}`)).toBeVisible();

  await settingsNav(page).getByRole('link', { name: 'Teams' }).click();
  await expect(page.getByTestId('teams-table')).toContainText('Support');
  await expect(page.getByTestId('teams-table').getByRole('row', { name: /Support/ })).toContainText('1');
  await page.getByRole('link', { name: 'Support' }).click();

  await page.getByRole('button', { name: `Remove ${owner.user.name} from team` }).click();
  await expectToast(page, 'Removed from the team');
  await expect(page.getByText('Nobody in this team yet')).toBeVisible();

  await page.getByLabel('Team name').fill('Customer support');
  await page.getByRole('button', { name: 'Save team' }).click();
  await expectToast(page, 'Team saved');
  await expect(page.getByRole('heading', { name: 'Customer support' })).toBeVisible();

  await page.getByRole('button', { name: 'Delete team' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete team' }).click();
  await expect(page).toHaveURL(/\/settings\/teams$/);
  await expect(page.getByText('No teams yet')).toBeVisible();
});

test('API keys: empty state and a key with an expiry', async ({ page }) => {
  await page.goto('/settings/api-keys');
  await expect(page.getByText('No API keys')).toBeVisible();
  await page.getByRole('button', { name: 'Create API key' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('Name').fill('Nightly export');
  await dialog.getByLabel('Expires after (days)').fill('30');
  await dialog.getByRole('button', { name: 'Create key' }).click();
  await expect(dialog.getByTestId('api-key-secret')).toHaveValue(/^wam_/);
  await dialog.getByRole('button', { name: 'I have copied it' }).click();
  const row = page.getByTestId('api-key-row-Nightly export');
  await expect(row.getByTestId('api-key-status')).toHaveText('active');
  await expect(row).not.toContainText('Never expires');
});

test('sessions: this device, another device, revoke all others', async ({ page, request }) => {
  // A second sign-in from "another device".
  const other = await request.post('/api/v1/auth/login', {
    data: { email: owner.user.email, password: owner.password },
    headers: { 'User-Agent': 'Mozilla/5.0 (Windows NT 10.0) Firefox/130.0' },
  });
  expect(other.status()).toBe(200);
  const otherAuth = (await other.json()) as Auth;

  await page.goto('/settings/sessions');
  await expect(page.getByTestId('session-current')).toContainText('This device');
  await expect(page.getByTestId('session-row').first()).toBeVisible();
  await page.getByRole('button', { name: 'Revoke all others' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Revoke all others' }).click();
  await expectToast(page, 'Signed out of all other devices');
  await expect(page.getByTestId('session-row')).toHaveCount(0);
  await expect(page.getByTestId('session-current')).toBeVisible();

  // The other device's refresh token no longer works.
  const refreshed = await request.post('/api/v1/auth/refresh', { data: { refresh_token: otherAuth.refresh_token } });
  expect(refreshed.status()).toBe(401);
});
