import { describe, expect, it } from 'vitest';

import { template } from '../campaigns/fixtures';
import {
  initialValues,
  localTemplateText,
  matchesTemplateSearch,
  templateLabel,
  templateSendBody,
  templateValueErrors,
  type SendableTemplate,
} from './templateSend';

const positional = template('t1', {
  name: 'order_update',
  components: {
    header: { format: 'text', text: 'Order {{1}}', example: 'A-1' },
    body: { text: 'Hi {{1}}, order {{2}} ships {{3}}.', examples: ['Ada', 'A-1', 'today'] },
    footer: null,
    buttons: [{ type: 'quick_reply', text: 'Thanks' }],
  },
  // The server's send order (not the order of first appearance).
  variables: ['header.1', 'body.1', 'body.2', 'body.3'],
});

const withButtons = template('t2', {
  name: 'spring_offer',
  language: 'de',
  components: {
    header: { format: 'image', example: 'https://ex.com/a.png' },
    body: { text: 'Hello {{first_name}}, your code: {{code}}', examples: ['Ada', 'SAVE10'] },
    footer: null,
    buttons: [
      { type: 'quick_reply', text: 'Stop' },
      { type: 'url', text: 'Shop', url: 'https://ex.com/s/{{1}}', example: 'x' },
      { type: 'copy_code', example: 'SAVE10' },
    ],
  },
  variables: ['body.first_name', 'body.code', 'button.1', 'button.2'],
});

describe('template sends from the inbox', () => {
  it('starts from the preview’s values and asks for the missing ones', () => {
    const v = initialValues(positional, { values: { 'header.1': 'A-1042', 'body.1': 'Ada', 'body.9': 'ignored' } });
    expect(v).toEqual({ 'header.1': 'A-1042', 'body.1': 'Ada', 'body.2': '', 'body.3': '' });
    expect(initialValues(positional, null)['body.1']).toBe('');
    expect(templateValueErrors(positional, { ...v, 'body.2': '  ', 'body.3': 'today' })).toEqual({
      'body.2': 'Enter a value',
    });
  });

  it('sends positional header and body parameters in the template’s variable order, trimmed', () => {
    const body = templateSendBody(positional, {
      'body.3': 'today',
      'body.1': ' Ada ',
      'header.1': 'A-1042',
      'body.2': 'A-1042',
    });
    expect(body).toEqual({
      type: 'template',
      template: {
        name: 'order_update',
        language: 'en_US',
        header: ['A-1042'],
        body: ['Ada', 'A-1042', 'today'],
      },
    });
  });

  it('names named body parameters and types URL and copy-code button parameters', () => {
    expect(
      templateSendBody(withButtons, {
        'body.first_name': 'Ada',
        'body.code': 'SAVE10',
        'button.1': 'spring?ref=ada',
        'button.2': 'SAVE10',
      }),
    ).toEqual({
      type: 'template',
      template: {
        name: 'spring_offer',
        language: 'de',
        body: ['Ada', 'SAVE10'],
        body_names: ['first_name', 'code'],
        button_params: [
          { sub_type: 'url', index: 1, value: 'spring?ref=ada' },
          { sub_type: 'copy_code', index: 2, value: 'SAVE10' },
        ],
      },
    });
  });

  it('sends a template without variables with an empty body', () => {
    const plain: SendableTemplate = {
      kind: 'whatsapp',
      name: 'hello_world',
      language: 'en_US',
      variables: [],
      components: { body: { text: 'Hello world' } },
    };
    expect(templateSendBody(plain, {})).toEqual({
      type: 'template',
      template: { name: 'hello_world', language: 'en_US', body: [] },
    });
  });

  it('sends a local (Telegram / Sandbox) template as its rendered text', () => {
    const local = template('t3', {
      kind: 'local',
      channel: { id: 'ch-sb', name: 'Sandbox', kind: 'sandbox' },
      components: {
        header: null,
        body: { text: 'Hi {{1}}, your order {{ 2 }} is ready. Bye {{1}}!', examples: [] },
        footer: null,
        buttons: [
          { type: 'quick_reply', text: 'Thanks' },
          { type: 'url', text: 'Track', url: 'https://ex.com/t/{{1}}' },
        ],
      },
      variables: ['body.1', 'body.2', 'button.1'],
    });
    const values = { 'body.1': 'Ada ', 'body.2': 'A-1042', 'button.1': 'A-1042' };
    expect(templateSendBody(local, values)).toEqual({
      type: 'text',
      text: 'Hi Ada, your order A-1042 is ready. Bye Ada!\nTrack: https://ex.com/t/A-1042',
    });
    // An unfilled variable stays visible as written.
    expect(localTemplateText(local, { 'body.1': 'Ada' })).toBe(
      'Hi Ada, your order {{ 2 }} is ready. Bye Ada!\nTrack: https://ex.com/t/{{1}}',
    );
  });

  it('finds templates by words of the name and the language', () => {
    const t = { name: 'order_update', language: 'en_US' };
    expect(templateLabel(t)).toBe('order_update · en_US');
    expect(matchesTemplateSearch(t, '')).toBe(true);
    expect(matchesTemplateSearch(t, 'ORDER')).toBe(true);
    expect(matchesTemplateSearch(t, 'order update')).toBe(true);
    expect(matchesTemplateSearch(t, 'update en_us')).toBe(true);
    expect(matchesTemplateSearch(t, 'order_update · en_US')).toBe(true);
    expect(matchesTemplateSearch(t, 'order fr')).toBe(false);
  });
});
