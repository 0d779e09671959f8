/**
 * Settings → Channels: the connect wizard's field errors, a WhatsApp channel's webhook URL and
 * verify token to paste into Meta, its edit page (secrets only sent when typed, test
 * connection, delete), and a Sandbox channel's simulator from its settings page.
 */
import { expect, test, type Page } from '@playwright/test';

import { expectToast, registerViaApi, useSession } from './helpers';

let pageErrors: Error[] = [];
test.beforeEach(async ({ page, request }) => {
  pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e));
  await useSession(page, await registerViaApi(request, 'owner'));
});
test.afterEach(() => {
  expect(pageErrors.map((e) => e.message)).toEqual([]);
});

async function openWizard(page: Page, kind: 'WhatsApp' | 'Telegram' | 'Sandbox') {
  await page.getByRole('button', { name: 'Connect channel' }).first().click();
  const dialog = page.getByRole('dialog', { name: 'Connect channel' });
  await dialog.getByRole('button', { name: kind }).click();
  return dialog;
}

test('a Telegram bot token in the wrong format is refused under the field', async ({ page }) => {
  await page.goto('/settings');
  await page.getByRole('navigation', { name: 'Settings' }).getByRole('link', { name: 'Channels' }).click();
  await expect(page.getByRole('heading', { name: 'Channels', level: 2 })).toBeVisible();
  const dialog = await openWizard(page, 'Telegram');
  await dialog.getByLabel('Bot token').fill('not-a-token');
  await dialog.getByRole('button', { name: 'Connect Telegram' }).click();
  await expect(dialog.getByText('A bot token looks like 123456789:AAF…, as @BotFather gave it')).toBeVisible();
  // Nothing was created.
  await dialog.getByRole('button', { name: 'Back' }).click();
  await page.keyboard.press('Escape');
  await expect(page.getByText('No channels yet')).toBeVisible();
});

test('WhatsApp: webhook URL and verify token to copy; edit, test connection, delete', async ({ page }) => {
  await page.goto('/settings/channels');
  const dialog = await openWizard(page, 'WhatsApp');
  await dialog.getByLabel('Name').fill('Support WA');
  await dialog.getByLabel('Phone number ID').fill('109876543210');
  await dialog.getByLabel('Access token').fill('EAAG-test-token');
  await dialog.getByLabel('App secret').fill('app-secret-value');
  await dialog.getByRole('button', { name: 'Connect WhatsApp' }).click();
  const result = dialog.getByTestId('connect-result');
  await expect(result).toContainText('Support WA is connected');
  await expect(result.getByTestId('webhook-url')).toHaveValue(/\/webhooks\/whatsapp\/[0-9a-f-]{36}$/);
  await expect(result.getByTestId('verify-token')).toHaveValue(/.{8,}/);
  await expect(result.getByRole('button', { name: 'Copy webhook url' })).toBeVisible();
  await expect(result.getByRole('button', { name: 'Copy verify token' })).toBeVisible();

  await result.getByRole('button', { name: 'Channel settings' }).click();
  await expect(page).toHaveURL(/\/settings\/channels\/[0-9a-f-]{36}$/);
  await expect(page.getByRole('heading', { name: 'Support WA', level: 2 })).toBeVisible();
  await expect(page.getByTestId('verify-token')).toHaveValue(/.{8,}/);
  // Secrets are never shown: "set", and kept unless typed.
  await expect(page.getByLabel('Access token')).toHaveValue('');
  await expect(page.getByLabel('Access token')).toHaveAttribute('placeholder', 'Set — type to replace');
  await page.getByLabel('Name').fill('Support WhatsApp');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await expectToast(page, 'Support WhatsApp saved');
  await expect(page.getByRole('heading', { name: 'Support WhatsApp', level: 2 })).toBeVisible();

  // Meta is not reachable from the test machine: the result is shown either way.
  await page.getByRole('button', { name: 'Test connection' }).click();
  await expect(page.getByTestId('test-result')).toBeVisible({ timeout: 30_000 });

  await page.getByRole('button', { name: 'Delete channel' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete channel' }).click();
  await expect(page).toHaveURL(/\/settings\/channels$/);
  await expect(page.getByText('No channels yet')).toBeVisible();
});

test('Sandbox: listed healthy-or-unknown with an enabled switch; simulate a customer from its page', async ({
  page,
}) => {
  await page.goto('/settings/channels');
  const dialog = await openWizard(page, 'Sandbox');
  await dialog.getByRole('button', { name: 'Connect Sandbox' }).click();
  await expect(dialog.getByTestId('connect-result')).toContainText('is connected');
  await expect(dialog.getByTestId('webhook-url')).toHaveCount(0);
  await page.keyboard.press('Escape');
  await expect(dialog).toBeHidden();

  const row = page.getByTestId('channel-row').filter({ hasText: 'Sandbox' });
  await expect(row.getByTestId('health-badge')).toBeVisible();
  const toggle = row.getByRole('switch', { name: 'Sandbox enabled' });
  await expect(toggle).toBeChecked();
  // Wait for the list to settle after the wizard closed, then flip the switch.
  await page.waitForLoadState('networkidle');
  await toggle.click();
  await expectToast(page, 'Sandbox disabled');
  await expect(toggle).not.toBeChecked();
  await toggle.click();
  await expectToast(page, 'Sandbox enabled');
  await expect(toggle).toBeChecked();

  await row.getByRole('link', { name: 'Sandbox' }).click();
  await page.getByRole('button', { name: 'Simulate customer' }).click();
  const drawer = page.getByRole('dialog', { name: 'Simulate customer' });
  await drawer.getByLabel('Message').fill('Hi from the settings page');
  await drawer.getByRole('button', { name: 'Send as customer' }).click();
  await expectToast(page, 'Ada Lovelace sent a message');

  await page.goto('/inbox');
  await expect(page.getByTestId('conversation-item').filter({ hasText: 'Hi from the settings page' })).toBeVisible();
});
