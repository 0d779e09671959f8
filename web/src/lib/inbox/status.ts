/**
 * Delivery status of outbound messages → the tick shown beside them, and the order statuses move
 * in: provider callbacks can arrive out of order (a "sent" after the "read"), so a status never
 * goes back, except to `failed`.
 */
import type { MessageError, MessageStatus } from './types';

export type Tick = 'clock' | 'sent' | 'delivered' | 'read' | 'failed';

export interface TickView {
  tick: Tick;
  label: string;
  color: string;
}

export function tickFor(status: MessageStatus, error?: MessageError | null): TickView | null {
  switch (status) {
    case 'queued':
      return { tick: 'clock', label: 'Queued', color: 'dimmed' };
    case 'sent':
      return { tick: 'sent', label: 'Sent', color: 'dimmed' };
    case 'delivered':
      return { tick: 'delivered', label: 'Delivered', color: 'dimmed' };
    case 'read':
      return { tick: 'read', label: 'Read', color: 'blue' };
    case 'played':
      return { tick: 'read', label: 'Played', color: 'blue' };
    case 'failed':
      return { tick: 'failed', label: failureText(error), color: 'red' };
    default:
      // Inbound (`received`) and notes have no tick.
      return null;
  }
}

/** "Re-engagement message — More than 24 hours have passed… (131047)". */
export function failureText(error: MessageError | null | undefined): string {
  if (!error) return 'Failed';
  const parts = [error.title];
  if (error.detail) parts.push(error.detail);
  return `${parts.join(' — ')} (${error.code})`;
}

const RANK: Record<MessageStatus, number> = {
  note: 0,
  received: 0,
  queued: 1,
  sent: 2,
  delivered: 3,
  read: 4,
  played: 5,
  failed: 6,
};

/** The status to keep when `next` arrives for a message that was `prev`. */
export function laterStatus(prev: MessageStatus, next: MessageStatus): MessageStatus {
  if (next === 'failed') return next;
  if (prev === 'failed') return next === 'queued' ? next : prev; // a retry queues it again
  return RANK[next] >= RANK[prev] ? next : prev;
}
