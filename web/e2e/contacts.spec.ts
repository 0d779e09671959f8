/**
 * Contacts: a custom field → a contact with a national phone and the field → list, search, edit,
 * duplicate identity, delete.
 */
import { expect, test } from '@playwright/test';

import { bearer, expectToast, pickOption, registerViaApi, useSession } from './helpers';

test('custom field → create contact → list (E.164) → search → edit → duplicate phone → delete', async ({
  page,
  request,
}) => {
  const owner = await registerViaApi(request);
  await useSession(page, owner);

  await test.step('define a single-choice "plan" field and a default country', async () => {
    await page.goto('/settings/contact-fields');
    await expect(page.getByText('No custom fields yet')).toBeVisible();
    await page.getByRole('button', { name: 'New field' }).click();
    const dialog = page.getByRole('dialog', { name: 'New contact field' });
    await dialog.getByLabel('Label').fill('Plan');
    await expect(dialog.getByLabel('Key')).toHaveValue('plan');
    await pickOption(page, 'Type', 'Single choice');
    const options = dialog.getByRole('textbox', { name: 'Options' });
    await options.fill('Free');
    await options.press('Enter');
    await options.fill('Pro');
    await options.press('Enter');
    await dialog.getByRole('button', { name: 'Create field' }).click();
    await expectToast(page, 'Field Plan created');
    await expect(page.getByTestId('contact-field-plan')).toContainText('Free, Pro');
    await expect(page.getByTestId('contact-field-plan')).toContainText('Single choice');

    const country = page.getByRole('textbox', { name: 'Default phone country' });
    await expect(country).toHaveValue('United States (US)');
    await country.click();
    await country.fill('United King');
    await page.getByRole('option', { name: 'United Kingdom (GB)' }).click();
    await page.getByRole('button', { name: 'Save country' }).click();
    await expectToast(page, 'Default country saved');
  });

  await test.step('create a contact with a national phone number and the plan', async () => {
    await page.getByRole('navigation', { name: 'Main navigation' }).getByRole('link', { name: 'Contacts' }).click();
    await expect(page.getByRole('heading', { name: 'Contacts', level: 2 })).toBeVisible();
    await expect(page.getByText('No contacts yet')).toBeVisible();
    await page.getByTestId('empty-state').getByRole('button', { name: 'New contact' }).click();
    const dialog = page.getByRole('dialog', { name: 'New contact' });
    await dialog.getByLabel('Name').fill('Ana Silva');
    await dialog.getByLabel('Company').fill('Acme');
    await dialog.getByRole('textbox', { name: 'Identity 1 value' }).fill('020 7946 0958');
    await pickOption(page, 'Plan', 'Pro');
    await dialog.getByRole('button', { name: 'Create contact' }).click();
    await expectToast(page, 'Ana Silva added');

    const detail = page.getByTestId('contact-detail');
    await expect(detail.getByTestId('contact-name')).toHaveText('Ana Silva');
    await expect(detail.getByTestId('identity')).toContainText('+442079460958');
    await expect(detail.getByTestId('contact-attributes')).toContainText('Pro');
    await page.keyboard.press('Escape');
    await expect(page).toHaveURL(/\/contacts$/);

    const row = page.getByTestId('contact-row').filter({ hasText: 'Ana Silva' });
    await expect(row).toContainText('+442079460958');
    await expect(row).toContainText('Acme');
  });

  await test.step('search by name prefix and by phone digits', async () => {
    const other = await request.post('/api/v1/contacts', {
      headers: bearer(owner.access_token),
      data: { name: 'Bruno Costa', identities: [{ kind: 'email', value: 'bruno@example.com' }] },
    });
    expect(other.status(), await other.text()).toBe(201);
    await page.reload();
    await expect(page.getByTestId('contact-row')).toHaveCount(2);

    const search = page.getByRole('textbox', { name: 'Search contacts' });
    await search.fill('an');
    await expect(page.getByTestId('contact-row')).toHaveCount(1);
    await expect(page.getByTestId('contact-row')).toContainText('Ana Silva');

    await search.fill('207946');
    await expect(page.getByTestId('contact-row')).toHaveCount(1);
    await expect(page.getByTestId('contact-row')).toContainText('Ana Silva');

    await search.fill('bru');
    await expect(page.getByTestId('contact-row')).toHaveCount(1);
    await expect(page.getByTestId('contact-row')).toContainText('bruno@example.com');

    await search.fill('nobody-like-this');
    await expect(page.getByText('No contacts match')).toBeVisible();
    await search.fill('');
    await expect(page.getByTestId('contact-row')).toHaveCount(2);
  });

  await test.step('edit the contact', async () => {
    await page.getByTestId('contact-row').filter({ hasText: 'Ana Silva' }).click();
    await expect(page).toHaveURL(/\/contacts\/[0-9a-f-]+$/);
    await page.getByTestId('contact-detail').getByRole('button', { name: 'Edit' }).click();
    const dialog = page.getByRole('dialog', { name: 'Edit Ana Silva' });
    await dialog.getByLabel('Company').fill('Acme Ltd');
    await pickOption(page, 'Plan', 'Free');
    await dialog.getByRole('switch', { name: 'Favorite' }).check();
    await dialog.getByRole('button', { name: 'Save contact' }).click();
    await expectToast(page, 'Ana Silva saved');
    const detail = page.getByTestId('contact-detail');
    await expect(detail).toContainText('Acme Ltd');
    await expect(detail.getByTestId('contact-attributes')).toContainText('Free');
    await page.keyboard.press('Escape');
    await expect(page.getByRole('button', { name: 'Unstar Ana Silva' })).toBeVisible();

    await page.getByText('Favorites').click();
    await expect(page.getByTestId('contact-row')).toHaveCount(1);
    await page.getByText('Favorites').click();
    await expect(page.getByTestId('contact-row')).toHaveCount(2);
  });

  await test.step('a second contact with the same phone is refused on the identity row', async () => {
    await page.getByRole('button', { name: 'New contact' }).click();
    const dialog = page.getByRole('dialog', { name: 'New contact' });
    await dialog.getByLabel('Name').fill('Ana Again');
    // An invalid number: the server's field error lands on the row too.
    await dialog.getByRole('textbox', { name: 'Identity 1 value' }).fill('12');
    await dialog.getByRole('button', { name: 'Create contact' }).click();
    await expect(dialog.getByTestId('identity-row-0').locator('.mantine-InputWrapper-error')).toBeVisible();
    await dialog.getByRole('textbox', { name: 'Identity 1 value' }).fill('+44 20 7946 0958');
    await dialog.getByRole('button', { name: 'Create contact' }).click();
    await expect(dialog.getByTestId('identity-row-0')).toContainText('This identity already belongs to a contact');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await expect(page.getByTestId('contact-row')).toHaveCount(2);
  });

  await test.step('delete the contact', async () => {
    await page.getByTestId('contact-row').filter({ hasText: 'Ana Silva' }).click();
    await page.getByTestId('contact-detail').getByRole('button', { name: 'Delete' }).click();
    await page
      .getByRole('dialog', { name: 'Delete Ana Silva?' })
      .getByRole('button', { name: 'Delete contact' })
      .click();
    await expectToast(page, 'Ana Silva deleted');
    await expect(page).toHaveURL(/\/contacts$/);
    await expect(page.getByTestId('contact-row')).toHaveCount(1);
    await expect(page.getByTestId('contact-row')).toContainText('Bruno Costa');
  });
});
