/**
 * Organising contacts: tags and groups pages → bulk tag and group → filter by tag and by group →
 * consent opt-in then opt-out with history → merge two contacts → bulk delete.
 */
import { expect, test, type Page } from '@playwright/test';

import { bearer, expectToast, pickOption, registerViaApi, useSession } from './helpers';

const rows = (page: Page) => page.getByTestId('contact-row');

test('tags and groups → bulk tag → filter → consent history → merge → bulk delete', async ({ page, request }) => {
  const owner = await registerViaApi(request);
  await useSession(page, owner);
  for (const c of [
    { name: 'Ana Silva', identities: [{ kind: 'email', value: 'ana@example.com' }] },
    { name: 'Bruno Costa', identities: [{ kind: 'email', value: 'bruno@example.com' }] },
    { name: 'Carla Dias', identities: [{ kind: 'email', value: 'carla@example.com' }] },
  ]) {
    const res = await request.post('/api/v1/contacts', { headers: bearer(owner.access_token), data: c });
    expect(res.status(), await res.text()).toBe(201);
  }

  await test.step('create, rename and recolour a tag', async () => {
    await page.goto('/settings/tags');
    await expect(page.getByRole('heading', { name: 'Tags', level: 2 })).toBeVisible();
    await expect(page.getByText('No tags yet')).toBeVisible();
    await page.getByRole('button', { name: 'New tag' }).click();
    let dialog = page.getByRole('dialog', { name: 'New tag' });
    await dialog.getByLabel('Name').fill('Vip');
    await dialog.getByRole('textbox', { name: 'Colour' }).fill('#2f9e44');
    await dialog.getByRole('button', { name: 'Create tag' }).click();
    await expectToast(page, 'Tag Vip created');
    await expect(page.getByTestId('tag-Vip')).toContainText('#2f9e44');

    await page.getByRole('button', { name: 'Edit Vip' }).click();
    dialog = page.getByRole('dialog', { name: 'Edit tag Vip' });
    await dialog.getByLabel('Name').fill('VIP');
    await dialog.getByRole('textbox', { name: 'Colour' }).fill('#e03131');
    await dialog.getByRole('button', { name: 'Save tag' }).click();
    await expectToast(page, 'Tag VIP saved');
    await expect(page.getByTestId('tag-VIP')).toContainText('#e03131');

    // A second tag, deleted with a confirmation.
    await page.getByRole('button', { name: 'New tag' }).click();
    dialog = page.getByRole('dialog', { name: 'New tag' });
    await dialog.getByLabel('Name').fill('Old');
    await dialog.getByRole('button', { name: 'Create tag' }).click();
    await expectToast(page, 'Tag Old created');
    await page.getByRole('button', { name: 'Delete Old' }).click();
    await page.getByRole('dialog', { name: 'Delete tag Old?' }).getByRole('button', { name: 'Delete tag' }).click();
    await expectToast(page, 'Tag Old deleted');
    await expect(page.getByTestId('tag-Old')).toHaveCount(0);
  });

  await test.step('create and describe a group', async () => {
    await page.getByRole('navigation', { name: 'Settings' }).getByRole('link', { name: 'Groups' }).click();
    await expect(page.getByRole('heading', { name: 'Groups', level: 2 })).toBeVisible();
    await expect(page.getByText('No groups yet')).toBeVisible();
    await page.getByRole('button', { name: 'New group' }).click();
    const dialog = page.getByRole('dialog', { name: 'New group' });
    await dialog.getByLabel('Name').fill('Leads');
    await dialog.getByLabel('Description').fill('Met at the trade fair');
    await dialog.getByRole('button', { name: 'Create group' }).click();
    await expectToast(page, 'Group Leads created');
    await expect(page.getByTestId('group-Leads')).toContainText('Met at the trade fair');
    await expect(page.getByTestId('group-Leads')).toContainText('0 contacts');
  });

  await test.step('tag two contacts and add them to the group in bulk', async () => {
    await page.goto('/contacts');
    await expect(rows(page)).toHaveCount(3);
    await page.getByRole('checkbox', { name: 'Select Ana Silva' }).check();
    await page.getByRole('checkbox', { name: 'Select Bruno Costa' }).check();
    await expect(page.getByTestId('bulk-count')).toHaveText('2 selected');
    await page.getByTestId('bulk-bar').getByRole('button', { name: 'Add tag' }).click();
    await page.getByRole('menuitem', { name: 'VIP' }).click();
    await expectToast(page, 'Tagged 2 contacts with VIP');
    await expect(page.getByTestId('bulk-bar')).toHaveCount(0);
    await expect(rows(page).filter({ hasText: 'Ana Silva' }).getByTestId('tag-chip')).toHaveText('VIP');

    await page.getByRole('checkbox', { name: 'Select all on page' }).check();
    await expect(page.getByTestId('bulk-count')).toHaveText('3 selected');
    await page.getByRole('checkbox', { name: 'Select Carla Dias' }).uncheck();
    await page.getByTestId('bulk-bar').getByRole('button', { name: 'Add to group' }).click();
    await page.getByRole('menuitem', { name: 'Leads' }).click();
    await expectToast(page, 'Added 2 contacts to Leads');
    await expect(rows(page).filter({ hasText: 'Bruno Costa' }).getByTestId('group-chip')).toHaveText('Leads');
  });

  await test.step('filter by tag shows exactly the tagged contacts', async () => {
    await pickOption(page, 'Tag', 'VIP');
    await expect(page).toHaveURL(/tag=/);
    await expect(rows(page)).toHaveCount(2);
    await expect(rows(page).filter({ hasText: 'Ana Silva' })).toHaveCount(1);
    await expect(rows(page).filter({ hasText: 'Bruno Costa' })).toHaveCount(1);
    // Composed with search.
    await page.getByRole('textbox', { name: 'Search contacts' }).fill('bru');
    await expect(rows(page)).toHaveCount(1);
    await expect(rows(page)).toContainText('Bruno Costa');
    await page.getByRole('textbox', { name: 'Search contacts' }).fill('');
    await expect(rows(page)).toHaveCount(2);
  });

  await test.step('the groups page links to the contacts in the group', async () => {
    await page.goto('/settings/groups');
    await expect(page.getByTestId('group-Leads')).toContainText('2 contacts');
    await page.getByRole('link', { name: 'Contacts in Leads' }).click();
    await expect(page).toHaveURL(/\/contacts\?group=/);
    await expect(page.getByRole('textbox', { name: 'Group', exact: true })).toHaveValue('Leads');
    await expect(rows(page)).toHaveCount(2);
    await expect(rows(page).filter({ hasText: 'Carla Dias' })).toHaveCount(0);
  });

  await test.step('record a marketing opt-in, then an opt-out, and see the history', async () => {
    await rows(page).filter({ hasText: 'Ana Silva' }).click();
    const detail = page.getByTestId('contact-detail');
    await expect(detail.getByTestId('contact-tags')).toContainText('VIP');
    await expect(detail.getByTestId('contact-groups')).toContainText('Leads');
    const consent = detail.getByTestId('consent');
    await expect(consent.getByTestId('consent-email-marketing')).toHaveText('Unknown');
    await expect(consent.getByText('No consent recorded yet.')).toBeVisible();
    await pickOption(page, 'Channel', 'E-mail');
    await pickOption(page, 'Purpose', 'Marketing');
    await consent.getByLabel('Consent note').fill('Signed up at the stand');
    await consent.getByRole('button', { name: 'Record opt-in' }).click();
    await expectToast(page, 'Opted in: E-mail marketing');
    await expect(consent.getByTestId('consent-email-marketing')).toHaveText('Opted in');
    await consent.getByRole('button', { name: 'Record opt-out' }).click();
    await expectToast(page, 'Opted out: E-mail marketing');
    await expect(consent.getByTestId('consent-email-marketing')).toHaveText('Opted out');
    await expect(consent.getByTestId('consent-whatsapp-marketing')).toHaveText('Unknown');
    const entries = consent.getByTestId('consent-entry');
    await expect(entries).toHaveCount(2);
    await expect(entries.nth(0)).toContainText('Opted out · E-mail marketing');
    await expect(entries.nth(0)).toContainText('Agent');
    await expect(entries.nth(1)).toContainText('Opted in · E-mail marketing');
    await expect(entries.nth(1)).toContainText('Signed up at the stand');
  });

  await test.step('merge another contact into this one', async () => {
    const detail = page.getByTestId('contact-detail');
    await detail.getByRole('button', { name: 'Merge' }).click();
    const dialog = page.getByRole('dialog', { name: 'Merge into Ana Silva' });
    await dialog.getByRole('textbox', { name: 'Contact to merge' }).fill('Carla');
    await page.getByRole('option', { name: 'Carla Dias' }).click();
    await dialog.getByRole('button', { name: 'Merge' }).click();
    await page
      .getByRole('dialog', { name: 'Merge Carla Dias into Ana Silva?' })
      .getByRole('button', { name: 'Merge contacts' })
      .click();
    await expectToast(page, 'Merged Carla Dias into Ana Silva');
    await expect(detail.getByTestId('contact-name')).toHaveText('Ana Silva');
    await expect(detail.getByTestId('identity')).toHaveCount(2);
    await expect(detail).toContainText('carla@example.com');
    await page.keyboard.press('Escape');
    await page.goto('/contacts');
    await expect(rows(page)).toHaveCount(2);
    await expect(rows(page).filter({ hasText: 'Carla Dias' })).toHaveCount(0);
  });

  await test.step('remove a tag in the drawer and bulk delete as an admin', async () => {
    await rows(page).filter({ hasText: 'Bruno Costa' }).click();
    const detail = page.getByTestId('contact-detail');
    await detail.getByRole('button', { name: 'Remove tag VIP' }).click();
    await expect(detail.getByTestId('contact-tags')).toContainText('No tags.');
    await page.keyboard.press('Escape');
    await expect(rows(page).filter({ hasText: 'Bruno Costa' }).getByTestId('tag-chip')).toHaveCount(0);

    await page.getByRole('checkbox', { name: 'Select Bruno Costa' }).check();
    await page.getByTestId('bulk-bar').getByRole('button', { name: 'Delete' }).click();
    await page
      .getByRole('dialog', { name: 'Delete 1 contact?' })
      .getByRole('button', { name: 'Delete contacts' })
      .click();
    await expectToast(page, 'Deleted 1 contact');
    await expect(rows(page)).toHaveCount(1);
    await expect(rows(page)).toContainText('Ana Silva');
  });
});
