/**
 * Browser tests against the real `wamage` binary serving the built app (run `npm run build` first).
 *
 * Environment:
 *   WAMAGE_BIN       server binary (default $CARGO_TARGET_DIR/debug/wamage, else ../target/debug/wamage)
 *   FAKE_PROVIDERS_BIN  the fake WhatsApp / Telegram APIs of crates/testkit (default: `fake-providers`
 *                    next to WAMAGE_BIN when that is set, else in the target dir as above). Started
 *                    on 127.0.0.1:18490 (Meta) and :18491 (Telegram) when the binary exists; the
 *                    server's WhatsApp channels then talk to it (WAMAGE_WHATSAPP_BASE_URL).
 *   E2E_FAKE_META_URL   an already running fake Meta API (with E2E_BASE_URL; default http://127.0.0.1:18490)
 *   WAMAGE_LISTEN    address to serve on (default 127.0.0.1:$E2E_PORT, E2E_PORT default 18480)
 *   WAMAGE_DATA_DIR  data directory (default: a fresh temp dir per run)
 *   E2E_BASE_URL     test an already running server instead of starting one
 *   CHROMIUM_PATH    browser binary (default /usr/bin/chromium; Playwright's own browsers are not used)
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { defineConfig, devices } from '@playwright/test';

const here = dirname(fileURLToPath(import.meta.url));
const targetDir = process.env.CARGO_TARGET_DIR ? resolve(process.env.CARGO_TARGET_DIR) : resolve(here, '../target');
const bin = resolve(here, process.env.WAMAGE_BIN ?? join(targetDir, 'debug/wamage'));
// Built together with the server, so it sits next to an explicitly given WAMAGE_BIN.
const fakeBin = resolve(
  here,
  process.env.FAKE_PROVIDERS_BIN ??
    (process.env.WAMAGE_BIN ? join(dirname(bin), 'fake-providers') : join(targetDir, 'debug/fake-providers')),
);
const fakeMeta = '127.0.0.1:18490';
const fakeTelegram = '127.0.0.1:18491';
process.env.E2E_FAKE_META_URL ??= `http://${fakeMeta}`;
// Specs that need the fakes (campaigns.spec.ts) say so clearly when they are missing; the others
// do not need them, so a checkout without the binary still runs them.
const withFakes = !process.env.E2E_BASE_URL && existsSync(fakeBin);
if (!process.env.E2E_BASE_URL && !withFakes) {
  process.env.E2E_FAKE_MISSING ??= fakeBin;
}
const listen = process.env.WAMAGE_LISTEN ?? `127.0.0.1:${process.env.E2E_PORT ?? '18480'}`;
// The config is evaluated again in every worker: create the temp dir once and hand it down via env.
process.env.WAMAGE_DATA_DIR ??= mkdtempSync(join(tmpdir(), 'wamage-e2e-'));
const dataDir = process.env.WAMAGE_DATA_DIR;
const baseURL = process.env.E2E_BASE_URL ?? `http://${listen}`;

if (!process.env.E2E_BASE_URL && !existsSync(resolve(here, 'dist/index.html'))) {
  throw new Error('web/dist is missing: run `npm run build` before `npm run e2e` (the server serves the built app)');
}

export default defineConfig({
  testDir: './e2e',
  outputDir: './test-results',
  timeout: 60_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: process.env.CI ? 1 : 2,
  retries: 0,
  forbidOnly: !!process.env.CI,
  reporter: [['list'], ['html', { open: 'never', outputFolder: 'playwright-report' }]],
  use: {
    baseURL,
    screenshot: 'only-on-failure',
    trace: 'retain-on-failure',
    video: 'off',
    locale: 'en-US',
    timezoneId: 'UTC',
    actionTimeout: 10_000,
    navigationTimeout: 20_000,
  },
  projects: [
    {
      name: 'chromium',
      use: {
        ...devices['Desktop Chrome'],
        launchOptions: {
          executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
          args: [
            '--no-sandbox',
            '--headless',
            '--disable-gpu',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
            '--no-first-run',
          ],
        },
      },
    },
  ],
  webServer: process.env.E2E_BASE_URL
    ? undefined
    : [
        ...(withFakes
          ? [
              {
                command: `"${fakeBin}" --meta-listen ${fakeMeta} --telegram-listen ${fakeTelegram}`,
                url: `http://${fakeMeta}/_fake/stats`,
                env: { RUST_LOG: process.env.RUST_LOG ?? 'warn' },
                reuseExistingServer: false,
                timeout: 60_000,
                stdout: 'pipe' as const,
                stderr: 'pipe' as const,
              },
            ]
          : []),
        {
          // The server rejects unknown WAMAGE_* variables, and WAMAGE_BIN is ours, not its.
          command: `env -u WAMAGE_BIN "${bin}" serve --listen ${listen} --data-dir "${dataDir}"`,
          url: `http://${listen}/health`,
          env: {
            WAMAGE_LISTEN: listen,
            WAMAGE_DATA_DIR: dataDir,
            // WhatsApp channels talk to the fake Cloud API (harmless for specs that make none).
            ...(withFakes ? { WAMAGE_WHATSAPP_BASE_URL: `http://${fakeMeta}` } : {}),
            RUST_LOG: process.env.RUST_LOG ?? 'warn',
          },
          reuseExistingServer: false,
          timeout: 60_000,
          stdout: 'pipe' as const,
          stderr: 'pipe' as const,
        },
      ],
});
