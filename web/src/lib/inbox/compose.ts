/**
 * Composer logic that is not React: who can be @mentioned in a private note, the message body
 * for each composer mode, the interactive-buttons builder's validation, and reaction toggling.
 * Mention tokens are the same `@[Name](user:<uuid>)` as in team chat (lib/chat/mentions).
 */
import { mentionToken, type Mentionable } from '../chat/mentions';
import type { ButtonIn, MessageOut, SendIn } from './types';

export type ComposeMode = 'reply' | 'note';

/** Members who can be mentioned in a note (everyone but me), as mention candidates. */
export function noteMentionables<M extends { user_id: string; name: string }>(members: M[], meId: string): M[] {
  return members.filter((m) => m.user_id !== meId);
}

export { mentionToken };
export type { Mentionable };

/** The body for the text in the composer: a customer reply (optionally quoting) or a private note. */
export function textBody(mode: ComposeMode, text: string, replyToId?: string | null): SendIn {
  if (mode === 'note') return { type: 'note', text };
  return { type: 'text', text, ...(replyToId ? { reply_to_id: replyToId } : {}) };
}

export const MAX_BUTTONS = 3;
export const MAX_BUTTON_TITLE = 20;

/** A stable id from a button title: "Yes, please!" → "yes-please" (unique within the message). */
export function buttonId(title: string, taken: string[]): string {
  const base =
    title
      .toLowerCase()
      .normalize('NFKD')
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 32) || 'button';
  let id = base;
  for (let n = 2; taken.includes(id); n++) id = `${base}-${n}`;
  return id;
}

export interface ButtonsDraft {
  text: string;
  titles: string[];
}

/** Field errors of the buttons builder, keyed `text` and `titles.<i>`; empty when it can be sent. */
export function buttonsErrors(d: ButtonsDraft): Record<string, string> {
  const errors: Record<string, string> = {};
  if (!d.text.trim()) errors.text = 'Enter the message body';
  const titles = d.titles.map((t) => t.trim());
  if (titles.filter(Boolean).length === 0) errors['titles.0'] = 'Add at least one button';
  if (titles.length > MAX_BUTTONS) errors.titles = `At most ${MAX_BUTTONS} buttons`;
  titles.forEach((t, i) => {
    if (t.length > MAX_BUTTON_TITLE) errors[`titles.${i}`] = `At most ${MAX_BUTTON_TITLE} characters`;
    else if (t && titles.indexOf(t) !== i) errors[`titles.${i}`] = 'Button titles must differ';
  });
  return errors;
}

export function buttonsBody(d: ButtonsDraft): SendIn {
  const buttons: ButtonIn[] = [];
  for (const t of d.titles.map((x) => x.trim()).filter(Boolean)) {
    buttons.push({
      id: buttonId(
        t,
        buttons.map((b) => b.id),
      ),
      title: t,
    });
  }
  return { type: 'buttons', text: d.text.trim(), buttons };
}

/**
 * The emoji to send when an agent picks `emoji` on a message: picking our current reaction again
 * removes it (an empty emoji), anything else replaces it (one agent reaction per message).
 */
export function reactionToSend(m: Pick<MessageOut, 'reactions'>, emoji: string, meId: string): string {
  const mine = m.reactions.find((r) => r.by === 'agent' && r.user_id === meId);
  return mine?.emoji === emoji ? '' : emoji;
}

/** Reactions after our own change, shown at once (the server's event confirms it). */
export function withOwnReaction(
  reactions: MessageOut['reactions'],
  emoji: string,
  meId: string,
): MessageOut['reactions'] {
  const rest = reactions.filter((r) => !(r.by === 'agent' && r.user_id === meId));
  return emoji ? [...rest, { emoji, by: 'agent', user_id: meId }] : rest;
}
