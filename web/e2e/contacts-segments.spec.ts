/**
 * Segments: create "VIP with plan" (tag has VIP) with the condition builder → a server error shown
 * on its row → preview count → save (live count) → filter the contact list by it → delete.
 */
import { readFileSync } from 'node:fs';

import { expect, test } from '@playwright/test';

import { bearer, expectToast, pickOption, registerViaApi, useSession } from './helpers';

test('segment builder → preview → save → filter the list → delete', async ({ page, request }) => {
  const owner = await registerViaApi(request);
  const headers = bearer(owner.access_token);
  await useSession(page, owner);
  const tagRes = await request.post('/api/v1/tags', { headers, data: { name: 'VIP', color: '#e03131' } });
  expect(tagRes.status(), await tagRes.text()).toBe(201);
  const tagId = ((await tagRes.json()) as { id: string }).id;
  const ids: string[] = [];
  for (const name of ['Seg Ana', 'Seg Bruno', 'Seg Carla']) {
    const res = await request.post('/api/v1/contacts', { headers, data: { name } });
    expect(res.status(), await res.text()).toBe(201);
    ids.push(((await res.json()) as { id: string }).id);
  }
  const bulk = await request.post('/api/v1/contacts/bulk', {
    headers,
    data: { action: 'add_tags', contact_ids: [ids[0], ids[2]], tag_ids: [tagId] },
  });
  expect(bulk.ok(), await bulk.text()).toBe(true);

  await page.goto('/contacts');
  await expect(page.getByTestId('contact-row')).toHaveCount(3);
  await page.getByRole('link', { name: 'Segments' }).click();
  await expect(page.getByRole('heading', { name: 'Segments', level: 2 })).toBeVisible();
  await expect(page.getByText('No segments yet')).toBeVisible();

  const dialog = page.getByRole('dialog', { name: 'New segment' });
  await test.step('build, see a row error, preview', async () => {
    await page.getByRole('button', { name: 'New segment' }).click();
    await dialog.getByLabel('Name').fill('VIP with plan');
    await pickOption(page, 'Value 1', 'VIP');
    // The count follows the conditions as they are built.
    await expect(dialog.getByTestId('segment-preview')).toHaveText('2 contacts match');
    // A second, incomplete condition: the live count waits for it, and Preview shows the
    // server's error on row 2.
    await dialog.getByRole('button', { name: 'Add condition' }).click();
    await expect(dialog.getByTestId('segment-live-hint')).toBeVisible();
    await dialog.getByRole('button', { name: 'Preview' }).click();
    await expect(dialog.getByTestId('condition-error-2')).toBeVisible();
    await expect(dialog.getByTestId('condition-error-1')).toHaveCount(0);
    await dialog.getByRole('button', { name: 'Remove condition 2' }).click();
    await dialog.getByRole('button', { name: 'Preview' }).click();
    await expect(dialog.getByTestId('segment-preview')).toHaveText('2 contacts match');
  });

  await test.step('save with a live count', async () => {
    await dialog.getByRole('button', { name: 'Save segment' }).click();
    await expectToast(page, 'Segment VIP with plan saved');
    await expect(page.getByTestId('segment-VIP with plan').getByTestId('segment-count')).toHaveText('2');
  });

  await test.step('filter the contact list by the segment', async () => {
    await page.goto('/contacts');
    await expect(page.getByTestId('contact-row')).toHaveCount(3);
    await pickOption(page, 'Segment', 'VIP with plan');
    await expect(page.getByTestId('contact-row')).toHaveCount(2);
    await expect(page.getByTestId('contact-row').filter({ hasText: 'Seg Ana' })).toHaveCount(1);
    await expect(page.getByTestId('contact-row').filter({ hasText: 'Seg Carla' })).toHaveCount(1);
    await expect(page).toHaveURL(/segment=/);
    // The export honours the segment too.
    const [dl] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export', exact: true }).click(),
    ]);
    const csv = readFileSync((await dl.path())!, 'utf8');
    expect(csv).toContain('Seg Ana');
    expect(csv).toContain('Seg Carla');
    expect(csv).not.toContain('Seg Bruno');
  });

  await test.step('delete with a confirmation', async () => {
    await page.goto('/contacts/segments');
    await page.getByRole('button', { name: 'Delete VIP with plan' }).click();
    await page
      .getByRole('dialog', { name: 'Delete segment VIP with plan?' })
      .getByRole('button', { name: 'Delete segment' })
      .click();
    await expectToast(page, 'Segment VIP with plan deleted');
    await expect(page.getByText('No segments yet')).toBeVisible();
  });
});
