/**
 * Contacts: a custom field → a contact with a national phone and the field → list, search, edit,
 * photo upload and removal, duplicate identity, delete.
 */
import { deflateSync } from 'node:zlib';

import { expect, test } from '@playwright/test';

import { bearer, expectToast, pickOption, registerViaApi, useSession } from './helpers';

/** A real `size`×`size` PNG of one colour, so the browser actually decodes and shows it. */
function solidPng(size: number, [r, g, b]: [number, number, number]): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf: Buffer) => {
    let c = 0xffffffff;
    for (const byte of buf) c = crcTable[(c ^ byte) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const out = Buffer.alloc(body.length + 8);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc(body), body.length + 4);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, no interlace
  const row = Buffer.from([0, ...Array.from({ length: size }, () => [r, g, b]).flat()]);
  const pixels = Buffer.concat(Array.from({ length: size }, () => row));
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(pixels)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

test('custom field → create contact → list (E.164) → search → edit → photo → duplicate phone → delete', async ({
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

  await test.step('upload a photo, see it in the drawer and the list, remove it', async () => {
    const png = solidPng(8, [20, 140, 120]);
    await page.getByTestId('contact-row').filter({ hasText: 'Ana Silva' }).click();
    const detail = page.getByTestId('contact-detail');
    const avatar = detail.getByTestId('contact-avatar');
    await expect(avatar).toHaveText('AS');
    await expect(detail.getByRole('button', { name: 'Remove photo' })).toHaveCount(0);
    await detail.locator('input[type=file]').setInputFiles({ name: 'ana.png', mimeType: 'image/png', buffer: png });
    await expectToast(page, 'Photo updated');
    const img = avatar.locator('img');
    await expect(img).toHaveAttribute('src', /^\/api\/v1\/contact-avatars\/[0-9a-f-]+\/[0-9a-f-]+\/[0-9a-f]+\.png$/);
    // The browser loaded it with no token (an <img> sends none) and decoded it.
    await expect.poll(() => img.evaluate((el: HTMLImageElement) => el.complete && el.naturalWidth)).toBe(8);
    const url = (await img.getAttribute('src'))!;
    const served = await request.get(url);
    expect(served.status()).toBe(200);
    expect(Buffer.from(await served.body()).equals(png)).toBe(true);

    await page.keyboard.press('Escape');
    const row = page.getByTestId('contact-row').filter({ hasText: 'Ana Silva' });
    await expect(row.getByTestId('contact-row-avatar').locator('img')).toHaveAttribute('src', url);

    await row.click();
    await detail.getByRole('button', { name: 'Remove photo' }).click();
    await expectToast(page, 'Photo removed');
    await expect(avatar.locator('img')).toHaveCount(0);
    await expect(avatar).toHaveText('AS');
    await expect(detail.getByRole('button', { name: 'Remove photo' })).toHaveCount(0);
    expect((await request.get(url)).status()).toBe(404);
    await page.keyboard.press('Escape');
    await expect(row.getByTestId('contact-row-avatar').locator('img')).toHaveCount(0);
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
