import { describe, expect, it } from 'vitest';

import type { AttrDefOut } from '../api/types';
import { csvHeader, guessMapping } from './imports';

describe('imports', () => {
  it('reads the header row', () => {
    expect(csvHeader('\uFEFFName,"E-mail","A ""b"", c"\r\nx,y,z')).toEqual(['Name', 'E-mail', 'A "b", c']);
    expect(csvHeader('one')).toEqual(['one']);
  });
  it('guesses targets', () => {
    const defs = [{ key: 'plan', label: 'Plan', type: 'text', options: [] } as unknown as AttrDefOut];
    expect(guessMapping(['Name', 'Phone', 'phone', 'Plan', 'Tags', 'Other'], defs)).toEqual({
      Name: 'name',
      Phone: 'phone',
      phone: 'ignore',
      Plan: 'attr:plan',
      Tags: 'tag',
      Other: 'ignore',
    });
  });
});
