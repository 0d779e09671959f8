/**
 * Export: the Contacts list's Export button downloads the filtered view as CSV through the API
 * client (bearer token), and the file honours the current filters.
 */
import { readFileSync } from 'node:fs';

import { expect, test } from '@playwright/test';

import { bearer, registerViaApi, useSession } from './helpers';

test('export the filtered contact list as CSV', async ({ page, request }) => {
  const owner = await registerViaApi(request);
  await useSession(page, owner);
  for (const c of [
    { name: 'Export Ana', identities: [{ kind: 'email', value: 'export-ana@example.com' }] },
    { name: 'Export Bruno', favorite: true, identities: [{ kind: 'email', value: 'export-bruno@example.com' }] },
  ]) {
    const res = await request.post('/api/v1/contacts', { headers: bearer(owner.access_token), data: c });
    expect(res.status(), await res.text()).toBe(201);
  }

  await page.goto('/contacts');
  await expect(page.getByTestId('contact-row')).toHaveCount(2);

  const download = async () => {
    const [dl] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Export', exact: true }).click(),
    ]);
    expect(dl.suggestedFilename()).toMatch(/\.csv$/);
    return readFileSync((await dl.path())!, 'utf8');
  };

  await test.step('everything', async () => {
    const csv = await download();
    const header = csv.split(/\r?\n/)[0] ?? '';
    expect(header).toContain('id');
    expect(header).toContain('name');
    expect(csv).toContain('Export Ana');
    expect(csv).toContain('export-bruno@example.com');
  });

  await test.step('only favorites', async () => {
    await page.getByText('Favorites', { exact: true }).click();
    await expect(page.getByTestId('contact-row')).toHaveCount(1);
    const csv = await download();
    expect(csv.split(/\r?\n/)[0]).toContain('name');
    expect(csv).toContain('Export Bruno');
    expect(csv).not.toContain('Export Ana');
  });
});
