import { expect, it } from 'vitest';

import { describeUserAgent, formatRelative } from './format';

it('describes common user agents', () => {
  expect(
    describeUserAgent(
      'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36',
    ),
  ).toBe('Chrome on Linux');
  expect(describeUserAgent('Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) Gecko/20100101 Firefox/130.0')).toBe(
    'Firefox on macOS',
  );
  expect(describeUserAgent(null)).toBe('Unknown device');
  expect(describeUserAgent('curl/8.5.0')).toBe('curl');
});

it('formats relative times', () => {
  const now = Date.parse('2026-01-10T12:00:00Z');
  expect(formatRelative('2026-01-10T11:59:50Z', now)).toBe('just now');
  expect(formatRelative('2026-01-10T09:00:00Z', now)).toMatch(/3 hours ago/);
  expect(formatRelative(null, now)).toBe('—');
});
