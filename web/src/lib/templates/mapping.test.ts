import { describe, expect, it } from 'vitest';

import {
  cleanMapping,
  completeMapping,
  mappedPreviewValue,
  mappingErrors,
  sourceLabel,
  sourceOptions,
} from './mapping';

const defs = [{ key: 'plan', label: 'Plan' }];

describe('variable mappings', () => {
  it('offers the contact fields and one entry per custom attribute', () => {
    const opts = sourceOptions(defs);
    expect(opts[0]).toEqual({ value: 'fixed', label: 'Fixed text' });
    expect(opts.map((o) => o.value)).toContain('contact.first_name');
    expect(opts[opts.length - 1]).toEqual({ value: 'attr.plan', label: 'Field: Plan' });
    expect(sourceLabel('attr.plan', defs)).toBe('Field: Plan');
    expect(sourceLabel('attr.gone', defs)).toBe('Field: gone');
  });

  it('completes a mapping from the campaign, then the template, then a fixed text', () => {
    const campaign = { 'body.1': { source: 'contact.name' as const } };
    const tpl = { 'body.1': { source: 'contact.first_name' as const }, 'body.2': { source: 'attr.plan' as const } };
    expect(completeMapping(['body.1', 'body.2', 'button.0'], campaign, tpl)).toEqual({
      'body.1': { source: 'contact.name' },
      'body.2': { source: 'attr.plan' },
      'button.0': { source: 'fixed', value: '' },
    });
  });

  it('sends a fixed text with its value and other sources with their fallback only', () => {
    expect(
      cleanMapping(
        {
          'body.1': { source: 'contact.first_name', value: 'stale', fallback: ' there ' },
          'body.2': { source: 'fixed', value: ' 20 ', fallback: 'x' },
          'body.3': { source: 'contact.company', fallback: '  ' },
          'gone.1': { source: 'fixed', value: 'dropped' },
        },
        ['body.1', 'body.2', 'body.3'],
      ),
    ).toEqual({
      'body.1': { source: 'contact.first_name', fallback: 'there' },
      'body.2': { source: 'fixed', value: '20' },
      'body.3': { source: 'contact.company' },
    });
  });

  it('flags an empty fixed text and a missing entry, not a contact field without fallback', () => {
    expect(
      mappingErrors({ 'body.1': { source: 'fixed', value: ' ' }, 'body.2': { source: 'contact.email' } }, [
        'body.1',
        'body.2',
        'body.3',
      ]),
    ).toEqual({ 'body.1': 'Enter the text to use', 'body.3': 'Choose where the value comes from' });
  });

  it('previews a fixed text as itself and a contact field by name', () => {
    expect(mappedPreviewValue({ source: 'fixed', value: '20' })).toBe('20');
    expect(mappedPreviewValue({ source: 'fixed', value: '' })).toBeUndefined();
    expect(mappedPreviewValue({ source: 'contact.first_name' })).toBe('[First name]');
    expect(mappedPreviewValue({ source: 'attr.plan' }, defs)).toBe('[Field: Plan]');
  });
});
