/**
 * Mentions in message text. The wire format (parsed by the server too) is a token
 * `@[Display Name](user:<uuid>)`, plus the bare words `@channel` and `@here`. The composer shows
 * the raw tokens while typing (they are what gets sent); messages render them as highlighted names.
 */

/** One `@[Name](user:id)` token. The name cannot contain brackets or a newline. */
export const MENTION_RE = /@\[([^\]\[\n]{1,80})\]\(user:([0-9a-fA-F-]{36})\)/g;

export interface Mentionable {
  user_id: string;
  name: string;
}

/** The token for a user; brackets in the display name are dropped so the token stays parseable. */
export function mentionToken(user: Mentionable): string {
  const name =
    user.name
      .replace(/[[\]\n]/g, '')
      .trim()
      .slice(0, 80) || 'user';
  return `@[${name}](user:${user.user_id})`;
}

/** Ids of users mentioned in `text`, each once, in order of appearance. */
export function mentionedUserIds(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(MENTION_RE)) {
    const id = m[2]!.toLowerCase();
    if (!out.includes(id)) out.push(id);
  }
  return out;
}

/** Whether `text` mentions everyone (`@channel` / `@here` as whole words). */
export function mentionsEveryone(text: string): boolean {
  return /(^|[^\w@])@(channel|here)\b/.test(text);
}

/** Replaces tokens with `@Name`: for previews, notifications and plain-text quotes. */
export function mentionsToPlain(text: string): string {
  return text.replace(MENTION_RE, (_, name: string) => `@${name}`);
}

/**
 * The mention being typed at `caret`: an `@` at the start or after whitespace, followed by up to
 * 30 non-space characters ending at the caret. Null when the caret is not in one.
 */
export function activeMention(text: string, caret: number): { start: number; query: string } | null {
  const before = text.slice(0, caret);
  const m = /(^|\s)@([^\s@[\]()]{0,30})$/.exec(before);
  if (!m) return null;
  return { start: caret - m[2]!.length - 1, query: m[2]! };
}

/** Suggestions for everyone in a channel; picked, they insert the bare word (`@channel `). */
export const EVERYONE: readonly Mentionable[] = [
  { user_id: '@channel', name: 'channel' },
  { user_id: '@here', name: 'here' },
];

/** Puts the token for `user` in place of the `@query` between `start` and `caret`, plus a space. */
export function insertMention(
  text: string,
  start: number,
  caret: number,
  user: Mentionable,
): { text: string; caret: number } {
  const token = `${user.user_id.startsWith('@') ? user.user_id : mentionToken(user)} `;
  const next = text.slice(0, start) + token + text.slice(caret).replace(/^ /, '');
  return { text: next, caret: start + token.length };
}

/** Members whose name matches the typed query (prefix of any word first), at most `limit`. */
export function filterMentionables<T extends Mentionable>(members: T[], query: string, limit = 8): T[] {
  const q = query.trim().toLowerCase();
  if (!q) return members.slice(0, limit);
  const starts: T[] = [];
  const contains: T[] = [];
  for (const m of members) {
    const name = m.name.toLowerCase();
    if (name.split(/\s+/).some((w) => w.startsWith(q))) starts.push(m);
    else if (name.includes(q)) contains.push(m);
  }
  return [...starts, ...contains].slice(0, limit);
}
