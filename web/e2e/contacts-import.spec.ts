/**
 * Import wizard: upload a 1,000-row CSV with 10 bad rows → map columns → dedupe by e-mail →
 * progress → completed with 990 created / 10 failed → download the error report.
 */
import { readFileSync } from 'node:fs';

import { expect, test } from '@playwright/test';

import { pickOption, registerViaApi, useSession } from './helpers';

test('import a CSV with bad rows and download the error report', async ({ page, request }) => {
  const owner = await registerViaApi(request);
  await useSession(page, owner);

  const lines = ['Full name,E-mail,Extra'];
  for (let i = 1; i <= 1000; i++) {
    const email = i % 100 === 10 ? `not-an-email-${i}` : `import${i}@example.com`;
    lines.push(`Imported ${i},${email},x`);
  }
  const csv = lines.join('\n') + '\n';

  await page.goto('/contacts');
  await page.getByRole('link', { name: 'Import' }).click();
  await expect(page.getByRole('heading', { name: 'Import contacts', level: 2 })).toBeVisible();
  await page
    .getByLabel('CSV file')
    .setInputFiles({ name: 'people.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });

  await test.step('map the columns', async () => {
    await expect(page.getByTestId('import-mapping')).toBeVisible();
    await expect(page.getByRole('textbox', { name: 'Map column Full name' })).toHaveValue('Name');
    await expect(page.getByRole('textbox', { name: 'Map column E-mail' })).toHaveValue('E-mail');
    await expect(page.getByRole('textbox', { name: 'Map column Extra' })).toHaveValue('Ignore');
    await pickOption(page, 'Find duplicates by', 'E-mail');
    await page.getByRole('button', { name: 'Start import' }).click();
  });

  await test.step('progress to a result', async () => {
    await expect(page.getByTestId('import-status')).toHaveText('Completed', { timeout: 30_000 });
    await expect(page.getByTestId('import-created')).toHaveText('Created: 990');
    await expect(page.getByTestId('import-failed')).toHaveText('Failed: 10');
  });

  await test.step('download the error report', async () => {
    const [dl] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download error report' }).click(),
    ]);
    expect(dl.suggestedFilename()).toMatch(/\.csv$/);
    const report = readFileSync((await dl.path())!, 'utf8');
    const rows = report.split(/\r?\n/).filter((l) => l.length > 0);
    expect(rows).toHaveLength(11); // the header and the 10 rejected rows
    for (let i = 10; i <= 1000; i += 100) expect(report).toContain(`not-an-email-${i}`);
    // Each row says its line in the file (the header is line 1).
    expect(rows[1]).toMatch(/^11,/);
  });
});
