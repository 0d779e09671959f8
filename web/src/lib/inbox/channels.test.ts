import { describe, expect, it } from 'vitest';

import { channelCreateBody, channelPatchBody, channelToForm, emptyChannelForm, validateChannelForm } from './channels';
import type { ChannelOut } from './types';

const whatsapp: ChannelOut = {
  id: 'ch1',
  kind: 'whatsapp',
  name: 'Support WhatsApp',
  enabled: true,
  health: { state: 'healthy', reason: null, checked_at: null },
  circuit: { state: 'closed', failures: 0, opened_at: null, retry_at: null },
  messages_per_second: 80,
  config: { phone_number_id: '1234567890', waba_id: '55', api_version: 'v21.0' },
  secrets: { access_token: true, app_secret: true },
  webhook_url: 'https://host/webhooks/whatsapp/ch1',
  verify_token: 'tok',
  created_at: '',
  updated_at: '',
};

describe('channel forms', () => {
  it('requires the WhatsApp ids and secrets when connecting', () => {
    const e = validateChannelForm('whatsapp', { ...emptyChannelForm('whatsapp'), phone_number_id: '+49 151' }, true);
    expect(Object.keys(e).sort()).toEqual(['access_token', 'app_secret', 'phone_number_id']);
  });

  it('checks the Telegram token format', () => {
    const v = { ...emptyChannelForm('telegram'), bot_token: 'not-a-token' };
    expect(validateChannelForm('telegram', v, true).bot_token).toMatch(/123456789:/);
    v.bot_token = '123456789:AAFabcdefghijklmnopqrstuvwxyz012345';
    expect(validateChannelForm('telegram', v, true)).toEqual({});
  });

  it('sends the secrets typed when connecting', () => {
    const v = {
      ...emptyChannelForm('whatsapp'),
      phone_number_id: ' 123 ',
      access_token: 'EAAG',
      app_secret: 's3cr3t',
      messages_per_second: '20',
    };
    expect(channelCreateBody('whatsapp', v)).toEqual({
      kind: 'whatsapp',
      name: 'Support WhatsApp',
      messages_per_second: 20,
      config: {
        phone_number_id: '123',
        waba_id: null,
        api_version: 'v21.0',
        access_token: 'EAAG',
        app_secret: 's3cr3t',
      },
    });
    expect(channelCreateBody('sandbox', { ...emptyChannelForm('sandbox'), auto_read: false }).config).toEqual({
      auto_read: false,
    });
  });

  it('editing, keeps set secrets unless one is typed', () => {
    const form = channelToForm(whatsapp);
    expect(form.access_token).toBe('');
    expect(validateChannelForm('whatsapp', form, false)).toEqual({});
    expect(channelPatchBody(whatsapp, { ...form, name: 'Renamed' })).toEqual({
      name: 'Renamed',
      messages_per_second: 80,
      config: { phone_number_id: '1234567890', waba_id: '55', api_version: 'v21.0' },
    });
    expect(channelPatchBody(whatsapp, { ...form, app_secret: 'new' }).config).toHaveProperty('app_secret', 'new');
  });
});
