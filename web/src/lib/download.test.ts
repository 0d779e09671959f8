import { describe, expect, it } from 'vitest';

import { fileNameFrom } from './download';

describe('fileNameFrom', () => {
  it('reads quoted, plain and RFC 5987 names', () => {
    expect(fileNameFrom('attachment; filename="contacts-2026-01-02.csv"', 'x.csv')).toBe('contacts-2026-01-02.csv');
    expect(fileNameFrom('attachment; filename=a.csv', 'x.csv')).toBe('a.csv');
    expect(fileNameFrom("attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.csv", 'x.csv')).toBe('résumé.csv');
  });
  it('falls back', () => {
    expect(fileNameFrom(null, 'x.csv')).toBe('x.csv');
    expect(fileNameFrom('attachment', 'x.csv')).toBe('x.csv');
  });
});
