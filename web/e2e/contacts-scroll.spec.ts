/**
 * The contacts list scrolls infinitely: 120 contacts, pages of 50, all reached by scrolling.
 */
import { expect, test } from '@playwright/test';

import { bearer, registerViaApi, useSession } from './helpers';

test('scrolling to the end of the list loads the next pages', async ({ page, request }) => {
  const owner = await registerViaApi(request);
  const csv = [
    'Name,Email',
    ...Array.from({ length: 120 }, (_, i) => `Scroll ${String(i).padStart(3, '0')},s${i}@example.com`),
  ].join('\n');
  const imp = await request.post('/api/v1/imports', {
    headers: bearer(owner.access_token),
    multipart: {
      file: { name: 'scroll.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) },
      mapping: JSON.stringify({ Name: 'name', Email: 'email' }),
    },
  });
  expect(imp.status(), await imp.text()).toBe(202);
  const { id } = (await imp.json()) as { id: string };
  await expect
    .poll(async () => {
      const res = await request.get(`/api/v1/imports/${id}`, { headers: bearer(owner.access_token) });
      return ((await res.json()) as { status: string }).status;
    })
    .toBe('completed');

  await useSession(page, owner);
  await page.goto('/contacts');
  const rows = page.locator('tbody tr');
  await expect(rows).toHaveCount(50);
  // No clicking: scrolling the end of the list into view fetches the next page, twice.
  await page.getByTestId('load-more-sentinel').scrollIntoViewIfNeeded();
  await expect(rows).toHaveCount(100);
  await page.getByTestId('load-more-sentinel').scrollIntoViewIfNeeded();
  await expect(rows).toHaveCount(120);
  await expect(page.getByTestId('load-more-sentinel')).toHaveCount(0);
  await expect(page.getByText('Scroll 119')).toBeVisible();
});
