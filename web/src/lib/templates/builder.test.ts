import { describe, expect, it } from 'vitest';

import { template } from '../campaigns/fixtures';
import {
  componentsOf,
  contentEditable,
  describeVariable,
  dotted,
  emptyButton,
  emptyTemplateForm,
  formFieldFor,
  formatWhatsApp,
  insertVariable,
  nextVariable,
  placeholders,
  previewFromServer,
  previewOfForm,
  splitErrors,
  templateBody,
  templatePatch,
  templateToForm,
  variablesOf,
  type TemplateFormValues,
} from './builder';

const form = (over: Partial<TemplateFormValues> = {}): TemplateFormValues => ({
  ...emptyTemplateForm('ch-wa'),
  name: 'order_update',
  body_text: 'Hi {{1}}, your order {{2}} ships today.',
  body_examples: ['Ada', 'A-1042'],
  ...over,
});

describe('placeholders and "Add variable"', () => {
  it('lists distinct placeholders: positional ones by number, named ones by first use', () => {
    expect(placeholders('{{2}} and {{1}} and {{2}} again')).toEqual(['1', '2']);
    expect(placeholders('Hi {{ first_name }}, code {{code}} for {{first_name}}')).toEqual(['first_name', 'code']);
    expect(placeholders('no variables, just {braces}')).toEqual([]);
  });

  it('inserts the next number at the caret, replacing a selection', () => {
    expect(nextVariable('Hi {{1}}, {{3}}')).toBe(4);
    expect(insertVariable('Hi , bye', 3)).toEqual({ text: 'Hi {{1}}, bye', cursor: 8 });
    expect(insertVariable('Hi {{1}}, NAME!', 10, 14)).toEqual({ text: 'Hi {{1}}, {{2}}!', cursor: 15 });
    // A selected placeholder being replaced does not count.
    expect(insertVariable('Hi {{1}}', 3, 8)).toEqual({ text: 'Hi {{1}}', cursor: 8 });
    expect(insertVariable('', 99)).toEqual({ text: '{{1}}', cursor: 5 });
  });

  it('keys variables by place: header, body, then URL-suffix and copy-code buttons', () => {
    const v = form({
      header_format: 'text',
      header_text: 'Order {{1}}',
      buttons: [
        { ...emptyButton('quick_reply'), text: 'Thanks' },
        { ...emptyButton('url'), text: 'Track', url: 'https://ex.com/t/{{1}}' },
        { ...emptyButton('url'), text: 'Shop', url: 'https://ex.com' },
        { ...emptyButton('copy_code'), example: 'SAVE10' },
      ],
    });
    expect(variablesOf(v)).toEqual(['header.1', 'body.1', 'body.2', 'button.1', 'button.3']);
    expect(describeVariable('body.2')).toBe('Body {{2}}');
    expect(describeVariable('button.1', v.buttons)).toBe('Button 2 (URL suffix)');
    expect(describeVariable('button.3', v.buttons)).toBe('Button 4 (offer code)');
    // A media header has no variables.
    expect(variablesOf({ ...v, header_format: 'image' })[0]).toBe('body.1');
  });
});

describe('request bodies', () => {
  it('builds the components: trimmed, examples sized to the body, empty footer as null', () => {
    const v = form({
      name: ' order_update ',
      body_examples: ['Ada', 'A-1042', 'stale'],
      footer: '  ',
      header_format: 'image',
      header_example: ' https://ex.com/a.png ',
      buttons: [
        { ...emptyButton('url'), text: ' Track ', url: 'https://ex.com/t/{{1}}', example: 'A-1042' },
        { ...emptyButton('url'), text: 'Shop', url: 'https://ex.com', example: 'ignored' },
        { ...emptyButton('phone'), text: 'Call', phone: '+4930123456' },
        { ...emptyButton('copy_code'), text: 'ignored', example: 'SAVE10' },
      ],
    });
    expect(templateBody(v)).toEqual({
      channel_id: 'ch-wa',
      name: 'order_update',
      language: 'en_US',
      category: 'MARKETING',
      components: {
        header: { format: 'image', example: 'https://ex.com/a.png' },
        body: { text: 'Hi {{1}}, your order {{2}} ships today.', examples: ['Ada', 'A-1042'] },
        footer: null,
        buttons: [
          { type: 'url', text: 'Track', url: 'https://ex.com/t/{{1}}', example: 'A-1042' },
          { type: 'url', text: 'Shop', url: 'https://ex.com' },
          { type: 'phone', text: 'Call', phone: '+4930123456' },
          { type: 'copy_code', example: 'SAVE10' },
        ],
      },
    });
    // A text header sends its example only when it has a variable.
    expect(componentsOf(form({ header_format: 'text', header_text: 'Hello', header_example: 'x' })).header).toEqual({
      format: 'text',
      text: 'Hello',
    });
  });

  it('round-trips a template through the form', () => {
    const t = template('t1');
    expect(componentsOf(templateToForm(t))).toEqual(t.components);
  });

  it('patches only the mapping once the content is locked (in review or approved WhatsApp)', () => {
    const t = template('t1', { status: 'approved' });
    expect(contentEditable(t)).toBe(false);
    expect(contentEditable({ kind: 'whatsapp', status: 'rejected' })).toBe(true);
    expect(contentEditable({ kind: 'local', status: 'approved' })).toBe(true);
    const m = { 'body.1': { source: 'contact.first_name' as const } };
    expect(templatePatch(templateToForm(t), m, false)).toEqual({ mapping: m });
    const full = templatePatch(templateToForm(t), { ...m, 'body.9': { source: 'fixed', value: 'x' } }, true);
    expect(full).toMatchObject({ name: 'spring_sale', mapping: m });
    expect(full).not.toHaveProperty('channel_id');
  });
});

describe('server field errors', () => {
  it('maps server paths to form paths', () => {
    expect(dotted('components.buttons[1].text')).toBe('components.buttons.1.text');
    expect(dotted('mapping["body.1"].value')).toBe('mapping.body.1.value');
    expect(formFieldFor('components.body.text')).toBe('body_text');
    expect(formFieldFor('/components/body/examples')).toBe('body_examples');
    expect(formFieldFor('components.body.examples[1]')).toBe('body_examples.1');
    expect(formFieldFor('components.buttons[1].url')).toBe('buttons.1.url');
    expect(formFieldFor('components.buttons[0]')).toBe('buttons.0.text');
    expect(formFieldFor('components.header', form({ header_format: 'video' }))).toBe('header_example');
    expect(formFieldFor('components.header', form({ header_format: 'text' }))).toBe('header_text');
    expect(formFieldFor('name')).toBe('name');
  });

  it('splits errors into fields, mapping entries and the rest', () => {
    const split = splitErrors(
      [
        { field: 'name', message: 'must be lowercase' },
        { field: 'name', message: 'second message loses' },
        { field: 'components.buttons[1].text', message: 'too long' },
        { field: 'mapping["body.1"].value', message: 'is required' },
        { field: 'waba', message: 'channel has no business account' },
      ],
      undefined,
      ['body.1', 'body.10'],
    );
    expect(split).toEqual({
      fields: { name: 'must be lowercase', 'buttons.1.text': 'too long' },
      mapping: { 'body.1': 'is required' },
      other: ['waba: channel has no business account'],
    });
  });
});

describe('the live preview', () => {
  it('replaces variables with their examples and keeps unfilled ones visible', () => {
    const v = form({
      header_format: 'text',
      header_text: 'Order {{1}}',
      header_example: 'A-1042',
      body_examples: ['Ada', ''],
      footer: 'Thanks',
      buttons: [
        { ...emptyButton('url'), text: 'Track', url: 'https://ex.com/t/{{1}}', example: 'A-1042' },
        { ...emptyButton('quick_reply'), text: 'Stop' },
      ],
    });
    const p = previewOfForm(v);
    expect(p.header).toEqual({ format: 'text', text: [{ text: 'Order ' }, { text: 'A-1042', variable: 'header.1' }] });
    expect(p.body).toEqual([
      { text: 'Hi ' },
      { text: 'Ada', variable: 'body.1' },
      { text: ', your order ' },
      { text: '{{2}}', variable: 'body.2', missing: true },
      { text: ' ships today.' },
    ]);
    expect(p.footer).toBe('Thanks');
    expect(p.buttons).toEqual([
      { type: 'url', label: 'Track', detail: 'https://ex.com/t/A-1042' },
      { type: 'quick_reply', label: 'Stop' },
    ]);
  });

  it('can show other values (a campaign mapping) instead of the examples', () => {
    const p = previewOfForm(form(), (k) => (k === 'body.1' ? '[First name]' : undefined));
    expect(p.body.map((s) => s.text).join('')).toBe('Hi [First name], your order {{2}} ships today.');
  });

  it('shows the server preview for a contact in the same model', () => {
    expect(
      previewFromServer({
        header: { format: 'image', media_url: 'https://ex.com/a.png' },
        body: 'Hi Ada',
        footer: null,
        buttons: [{ type: 'copy_code', text: '', code: 'SAVE10' }],
        missing: [],
      }),
    ).toEqual({
      header: { format: 'image', mediaUrl: 'https://ex.com/a.png' },
      body: [{ text: 'Hi Ada' }],
      footer: null,
      buttons: [{ type: 'copy_code', label: 'Copy offer code', detail: 'SAVE10' }],
    });
  });

  it('renders WhatsApp formatting, leaving unmatched markers as text', () => {
    expect(formatWhatsApp('Get *20% off* _today_ ~only~ with ```CODE```')).toEqual([
      { text: 'Get ', styles: [] },
      { text: '20% off', styles: ['bold'] },
      { text: ' ', styles: [] },
      { text: 'today', styles: ['italic'] },
      { text: ' ', styles: [] },
      { text: 'only', styles: ['strike'] },
      { text: ' with ', styles: [] },
      { text: 'CODE', styles: ['mono'] },
    ]);
    expect(formatWhatsApp('*bold _and italic_*')).toEqual([
      { text: 'bold ', styles: ['bold'] },
      { text: 'and italic', styles: ['bold', 'italic'] },
    ]);
    expect(formatWhatsApp('2 * 3 = 6 and snake_case_name')).toEqual([
      { text: '2 * 3 = 6 and snake_case_name', styles: [] },
    ]);
  });
});
