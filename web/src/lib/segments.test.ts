import { describe, expect, it } from 'vitest';

import type { AttrDefOut } from '../api/types';
import { errorRow, fromFilter, newRow, opsFor, toFilter } from './segments';

const defs = [{ key: 'plan', label: 'Plan', type: 'number', options: [] } as unknown as AttrDefOut];

describe('segments', () => {
  it('builds filter JSON from rows', () => {
    const f = toFilter(
      {
        mode: 'any',
        rows: [
          { ...newRow('tag'), value: 't1' },
          { ...newRow('favorite') },
          { ...newRow('consent'), op: 'opted_out', channel: 'email', purpose: 'utility' },
          { field: 'attr:plan', op: 'gt', value: '3', channel: '', purpose: '' },
          { field: 'attr:plan', op: 'is_set', value: 'x', channel: '', purpose: '' },
        ],
      },
      defs,
    );
    expect(f).toEqual({
      any: [
        { field: 'tag', op: 'has', value: 't1' },
        { field: 'favorite', op: 'is', value: true },
        { field: 'consent', op: 'opted_out', channel: 'email', purpose: 'utility' },
        { field: 'attr:plan', op: 'gt', value: 3 },
        { field: 'attr:plan', op: 'is_set' },
      ],
    });
  });
  it('round-trips', () => {
    const d = fromFilter({ all: [{ field: 'group', op: 'not_in', value: 'g' }] });
    expect(d.mode).toBe('all');
    expect(d.rows[0]).toMatchObject({ field: 'group', op: 'not_in', value: 'g' });
  });
  it('maps error paths and ops', () => {
    expect(errorRow('filter.all[1].value')).toBe(1);
    expect(errorRow('filter.any[12]')).toBe(12);
    expect(errorRow('name')).toBeNull();
    expect(opsFor('attr:plan', defs)).toContain('gt');
    expect(opsFor('tag', defs)).toEqual(['has', 'has_not']);
  });
});
