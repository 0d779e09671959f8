import { describe, expect, it } from 'vitest';

import {
  bulkBody,
  bulkMessage,
  consentGrid,
  isHexColor,
  pageSelection,
  selectedOnPage,
  textOn,
  toggleOne,
  togglePage,
} from './organize';

describe('selection', () => {
  const page = ['a', 'b', 'c'];
  it('reports none / some / all for the rows shown', () => {
    expect(pageSelection(new Set(), page)).toBe('none');
    expect(pageSelection(new Set(['b', 'x']), page)).toBe('some');
    expect(pageSelection(new Set(page), page)).toBe('all');
  });
  it('select-all adds the page, or clears it when all are selected, keeping others', () => {
    expect([...togglePage(new Set(['x', 'a']), page)].sort()).toEqual(['a', 'b', 'c', 'x']);
    expect([...togglePage(new Set(['x', ...page]), page)]).toEqual(['x']);
  });
  it('toggles one and keeps only visible ids for actions', () => {
    const s = toggleOne(toggleOne(new Set(), 'a'), 'c');
    expect(selectedOnPage(s, page)).toEqual(['a', 'c']);
    expect(selectedOnPage(toggleOne(s, 'a'), ['c', 'b'])).toEqual(['c']);
  });
});

describe('bulk', () => {
  it('builds the body for each action', () => {
    expect(bulkBody('add_tags', ['1'], 't')).toEqual({ action: 'add_tags', contact_ids: ['1'], tag_ids: ['t'] });
    expect(bulkBody('remove_from_groups', ['1', '2'], 'g')).toEqual({
      action: 'remove_from_groups',
      contact_ids: ['1', '2'],
      group_ids: ['g'],
    });
    expect(bulkBody('delete', ['1'])).toEqual({ action: 'delete', contact_ids: ['1'] });
  });
  it('says how many contacts changed', () => {
    expect(bulkMessage('add_tags', 2, 'VIP')).toBe('Tagged 2 contacts with VIP');
    expect(bulkMessage('remove_from_groups', 1, 'Leads')).toBe('Removed 1 contact from Leads');
    expect(bulkMessage('delete', 0)).toBe('Deleted 0 contacts');
  });
});

describe('colours', () => {
  it('accepts #RRGGBB only', () => {
    expect(isHexColor('#1a2B3c')).toBe(true);
    expect(isHexColor('#123')).toBe(false);
    expect(isHexColor('red')).toBe(false);
  });
  it('picks readable text', () => {
    expect(textOn('#ffffff')).toBe('#000000');
    expect(textOn('#1971c2')).toBe('#ffffff');
  });
});

describe('consentGrid', () => {
  it('has every channel × purpose with the standing entry', () => {
    const at = '2026-01-01T00:00:00Z';
    const grid = consentGrid([{ channel: 'email', purpose: 'marketing', status: 'opted_out', source: 'agent', at }]);
    expect(grid).toHaveLength(8);
    expect(grid.find((c) => c.channel === 'email' && c.purpose === 'marketing')?.state?.status).toBe('opted_out');
    expect(grid.filter((c) => c.state === null)).toHaveLength(7);
  });
});
