import { useForm } from '@mantine/form';
import { act, renderHook } from '@testing-library/react';
import { describe, expect, it } from 'vitest';

import { ApiError } from '../api/problem';
import type { AttrDefOut, ContactOut } from '../api/types';
import {
  applyNestedApiError,
  attrToForm,
  contactToForm,
  countryOptions,
  formToAttr,
  formToContactIn,
  formToContactPatch,
  formatAttr,
  hasPath,
  mainIdentity,
  suggestKey,
  timeZones,
  toFormPath,
  type ContactFormValues,
} from './contacts';

const T = '2026-01-01T00:00:00Z';
const def = (key: string, type: AttrDefOut['type'], options: string[] = []): AttrDefOut => ({
  key,
  label: key,
  type,
  options,
  required: false,
  created_at: T,
  updated_at: T,
});
const DEFS = [
  def('plan', 'single_choice', ['free', 'pro']),
  def('seats', 'number'),
  def('since', 'date'),
  def('vip', 'boolean'),
  def('langs', 'multi_choice', ['en', 'pt']),
  def('nick', 'text'),
];

const contact = (over: Partial<ContactOut> = {}): ContactOut =>
  ({
    id: '00000000-0000-0000-0000-000000000001',
    name: 'Ana',
    company: null,
    language: null,
    time_zone: null,
    notes: null,
    favorite: false,
    blocked: false,
    attributes: {},
    identities: [],
    created_at: T,
    updated_at: T,
    ...over,
  }) as ContactOut;

describe('attribute values ↔ form values', () => {
  it('reads stored values into the input of each type, and junk as empty', () => {
    expect(attrToForm('number', 3.5)).toBe(3.5);
    expect(attrToForm('number', '3')).toBe('');
    expect(attrToForm('boolean', true)).toBe(true);
    expect(attrToForm('boolean', 'yes')).toBe(false);
    expect(attrToForm('multi_choice', ['en', 1, 'pt'])).toEqual(['en', 'pt']);
    expect(attrToForm('multi_choice', undefined)).toEqual([]);
    expect(attrToForm('date', '2026-03-01')).toBe('2026-03-01');
    expect(attrToForm('single_choice', null)).toBe('');
  });

  it('writes form values as JSON, with null for "no value"', () => {
    expect(formToAttr('number', 12)).toBe(12);
    expect(formToAttr('number', ' 7 ')).toBe(7);
    expect(formToAttr('number', '')).toBeNull();
    // Not a number: sent as typed, so the server names the problem.
    expect(formToAttr('number', 'abc')).toBe('abc');
    expect(formToAttr('boolean', false)).toBe(false);
    expect(formToAttr('multi_choice', [])).toBeNull();
    expect(formToAttr('multi_choice', ['en'])).toEqual(['en']);
    expect(formToAttr('text', '  hi ')).toBe('hi');
    expect(formToAttr('date', '')).toBeNull();
    expect(formToAttr('single_choice', 'pro')).toBe('pro');
  });

  it('formats values for display', () => {
    expect(formatAttr('boolean', true)).toBe('Yes');
    expect(formatAttr('boolean', false)).toBe('No');
    expect(formatAttr('multi_choice', ['en', 'pt'])).toBe('en, pt');
    expect(formatAttr('text', undefined)).toBe('—');
    expect(formatAttr('number', 0)).toBe('0');
  });
});

describe('contact form ↔ API bodies', () => {
  it('starts a new contact with one phone row and empty attributes', () => {
    const v = contactToForm(DEFS);
    expect(v.identities).toEqual([{ kind: 'phone', value: '' }]);
    expect(v.attributes).toEqual({ plan: '', seats: '', since: '', vip: false, langs: [], nick: '' });
  });

  it('builds a create body without blanks', () => {
    const v: ContactFormValues = {
      ...contactToForm(DEFS),
      name: ' Ana ',
      time_zone: 'Europe/Lisbon',
      identities: [
        { kind: 'phone', value: ' 020 7946 0958 ' },
        { kind: 'email', value: '  ' },
      ],
    };
    v.attributes.plan = 'pro';
    v.attributes.seats = 3;
    const body = formToContactIn(DEFS, v);
    expect(body).toEqual({
      name: 'Ana',
      favorite: false,
      blocked: false,
      time_zone: 'Europe/Lisbon',
      identities: [{ kind: 'phone', value: '020 7946 0958' }],
      // A switch always has a value.
      attributes: { plan: 'pro', seats: 3, vip: false },
    });
  });

  it('builds a patch that clears blanks and removes only attributes that had a value', () => {
    const before = contact({ company: 'Acme', attributes: { plan: 'pro', nick: 'a' } as never });
    const v = contactToForm(DEFS, before);
    expect(v.identities).toEqual([]);
    expect(v.company).toBe('Acme');
    v.company = '';
    v.attributes.plan = '';
    v.attributes.since = '2026-02-03';
    const patch = formToContactPatch(DEFS, v, before);
    expect(patch.company).toBeNull();
    expect(patch.attributes).toEqual({ plan: null, since: '2026-02-03', vip: false, nick: 'a' });
  });
});

describe('server field names → form paths', () => {
  it('normalises brackets, JSON pointers and body. prefixes', () => {
    expect(toFormPath('identities[0].value')).toBe('identities.0.value');
    expect(toFormPath('/attributes/plan')).toBe('attributes.plan');
    expect(toFormPath('body.name')).toBe('name');
  });

  it('knows which paths exist', () => {
    const v = contactToForm(DEFS);
    expect(hasPath(v, 'identities.0.value')).toBe(true);
    expect(hasPath(v, 'identities.1.value')).toBe(false);
    expect(hasPath(v, 'attributes.plan')).toBe(true);
    expect(hasPath(v, 'attributes.nope')).toBe(false);
  });

  it('puts nested errors under their inputs and returns the rest', () => {
    const form = renderHook(() => useForm({ mode: 'controlled', initialValues: contactToForm(DEFS) })).result;
    let rest: string | null = 'unset';
    act(() => {
      rest = applyNestedApiError(
        form.current,
        new ApiError({
          status: 422,
          code: 'validation_failed',
          title: 'Invalid',
          errors: [
            { field: 'identities[0].value', message: 'is not a valid phone number' },
            { field: 'attributes.plan', message: 'is required' },
          ],
        }),
      );
    });
    expect(rest).toBeNull();
    expect(form.current.errors).toEqual({
      'identities.0.value': 'is not a valid phone number',
      'attributes.plan': 'is required',
    });

    act(() => {
      rest = applyNestedApiError(
        form.current,
        new ApiError({
          status: 422,
          code: 'validation_failed',
          title: 'Invalid',
          errors: [{ field: 'attributes.gone', message: 'is not a defined contact attribute' }],
        }),
      );
    });
    expect(rest).toBe('Invalid (attributes.gone: is not a defined contact attribute)');
  });
});

describe('helpers', () => {
  it('picks the main identity by preference', () => {
    const ids = [
      { id: '1', kind: 'email', value: 'a@x', created_at: T },
      { id: '2', kind: 'whatsapp_phone', value: '+1', created_at: T },
      { id: '3', kind: 'phone', value: '+2', created_at: T },
    ] as ContactOut['identities'];
    expect(mainIdentity(ids, ['phone', 'whatsapp_phone'])?.value).toBe('+2');
    expect(mainIdentity(ids, ['telegram'])).toBeUndefined();
  });

  it('suggests snake_case keys from labels', () => {
    expect(suggestKey('Customer plan')).toBe('customer_plan');
    expect(suggestKey('  Língua / idioma!')).toBe('lingua_idioma');
    expect(suggestKey('2nd phone')).toBe('f_2nd_phone');
  });

  it('lists time zones and countries', () => {
    expect(timeZones()).toContain('UTC');
    const countries = countryOptions('en');
    expect(countries).toContainEqual({ value: 'PT', label: 'Portugal (PT)' });
    expect(countries.some((c) => c.value === 'EU')).toBe(false);
  });
});
