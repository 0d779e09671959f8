/** Test data for the template and campaign tests (not used by the app). */
import type { ChannelKind, ChannelOut } from '../inbox/types';
import type { TemplateOut } from '../templates/types';
import { EMPTY_COUNTS } from './progress';
import type { CampaignOut, Counts } from './types';

export function template(id: string, over: Partial<TemplateOut> = {}): TemplateOut {
  return {
    id,
    channel: { id: 'ch-wa', name: 'Support WhatsApp', kind: 'whatsapp' },
    kind: 'whatsapp',
    name: 'spring_sale',
    language: 'en_US',
    category: 'MARKETING',
    status: 'approved',
    rejected_reason: null,
    quality: null,
    provider_template_id: null,
    components: {
      header: { format: 'text', text: 'Hello {{1}}', example: 'Ada' },
      body: { text: 'Hi {{1}}, {{2}}% off until Sunday!', examples: ['Ada', '20'] },
      footer: 'Reply STOP to opt out',
      buttons: [{ type: 'quick_reply', text: 'Stop promotions' }],
    },
    variables: ['header.1', 'body.1', 'body.2'],
    mapping: { 'body.1': { source: 'contact.first_name', fallback: 'there' } },
    created_at: '2026-01-01T09:00:00Z',
    updated_at: '2026-01-01T10:00:00Z',
    submitted_at: null,
    synced_at: null,
    ...over,
  };
}

export function counts(over: Partial<Counts> = {}): Counts {
  return { ...EMPTY_COUNTS, ...over };
}

export function campaign(id: string, over: Partial<CampaignOut> = {}): CampaignOut {
  return {
    id,
    name: 'Spring sale',
    channel: { id: 'ch-wa', name: 'Support WhatsApp', kind: 'whatsapp' },
    template: { id: 't1', name: 'spring_sale', language: 'en_US', category: 'MARKETING', status: 'approved' },
    variables: {},
    audience: { groups: ['g1'], tags: [], segments: [], exclude_groups: [], exclude_tags: [], exclude_segments: [] },
    status: 'running',
    pause_reason: null,
    scheduled_at: null,
    time_zone: null,
    failure_threshold: 0.2,
    counts: counts({ total: 500, pending: 500 }),
    rate_per_second: 0,
    eta_seconds: null,
    created_at: '2026-01-01T09:00:00Z',
    updated_at: '2026-01-01T09:00:00Z',
    launched_at: '2026-01-01T09:01:00Z',
    completed_at: null,
    ...over,
  };
}

/** A channel as GET /channels lists it. */
export function channelOut(id: string, kind: ChannelKind = 'whatsapp', over: Partial<ChannelOut> = {}): ChannelOut {
  return {
    id,
    kind,
    name: kind === 'whatsapp' ? 'Support WhatsApp' : kind === 'telegram' ? 'Bot' : 'Sandbox',
    enabled: true,
    health: { state: 'healthy', reason: null, checked_at: null },
    circuit: { state: 'closed', failures: 0, retry_at: null },
    messages_per_second: 80,
    config: { phone_number_id: '106540352242922', waba_id: '102290129340398' },
    secrets: {},
    webhook_url: null,
    verify_token: null,
    created_at: '2026-01-01T09:00:00Z',
    updated_at: '2026-01-01T09:00:00Z',
    ...over,
  } as ChannelOut;
}
