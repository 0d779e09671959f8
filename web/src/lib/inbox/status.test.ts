import { describe, expect, it } from 'vitest';

import { failureText, laterStatus, tickFor } from './status';

describe('tickFor', () => {
  it('maps delivery statuses to ticks', () => {
    expect(tickFor('queued')).toMatchObject({ tick: 'clock', label: 'Queued' });
    expect(tickFor('sent')).toMatchObject({ tick: 'sent', label: 'Sent' });
    expect(tickFor('delivered')).toMatchObject({ tick: 'delivered', color: 'dimmed' });
    expect(tickFor('read')).toMatchObject({ tick: 'read', color: 'blue' });
    expect(tickFor('played')).toMatchObject({ tick: 'read', color: 'blue' });
  });

  it('shows the provider error of a failed message: title, detail and code', () => {
    const error = {
      code: 131047,
      title: 'Re-engagement message',
      detail: 'More than 24 hours have passed since the customer last replied.',
      class: 'needs_action' as const,
    };
    expect(tickFor('failed', error)).toEqual({
      tick: 'failed',
      color: 'red',
      label: 'Re-engagement message — More than 24 hours have passed since the customer last replied. (131047)',
    });
    expect(failureText(null)).toBe('Failed');
  });

  it('has no tick for inbound messages and notes', () => {
    expect(tickFor('received')).toBeNull();
    expect(tickFor('note')).toBeNull();
  });
});

describe('laterStatus', () => {
  it('never goes back when callbacks arrive out of order', () => {
    expect(laterStatus('read', 'sent')).toBe('read');
    expect(laterStatus('delivered', 'read')).toBe('read');
    expect(laterStatus('queued', 'delivered')).toBe('delivered');
  });

  it('takes a failure at any point, and a retry after one', () => {
    expect(laterStatus('sent', 'failed')).toBe('failed');
    expect(laterStatus('failed', 'delivered')).toBe('failed');
    expect(laterStatus('failed', 'queued')).toBe('queued');
  });
});
