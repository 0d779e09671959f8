/** A small built-in emoji set for reactions and the composer (name → used by the picker search). */
export const QUICK_REACTIONS = ['👍', '❤️', '😂', '🎉', '😮', '😢'] as const;

// prettier-ignore
export const EMOJI: readonly (readonly [string, string])[] = [
  ['😀', 'grinning'], ['😃', 'smiley'], ['😄', 'smile'], ['😁', 'grin'], ['😆', 'laughing'], ['😅', 'sweat smile'],
  ['😂', 'joy tears'], ['🙂', 'slight smile'], ['😉', 'wink'], ['😊', 'blush'], ['😇', 'innocent'], ['😍', 'heart eyes'],
  ['😘', 'kiss'], ['😋', 'yum'], ['😎', 'cool sunglasses'], ['🤓', 'nerd'], ['🤔', 'thinking'], ['🤨', 'raised eyebrow'],
  ['😐', 'neutral'], ['😑', 'expressionless'], ['🙄', 'eye roll'], ['😏', 'smirk'], ['😬', 'grimace'], ['😌', 'relieved'],
  ['😴', 'sleeping'], ['🤒', 'sick'], ['🤯', 'mind blown'], ['🥳', 'party'], ['😮', 'open mouth wow'], ['😲', 'astonished'],
  ['😢', 'cry sad'], ['😭', 'sob'], ['😤', 'triumph'], ['😡', 'angry'], ['🤬', 'cursing'], ['😱', 'scream'],
  ['🤗', 'hug'], ['🤝', 'handshake'], ['👍', 'thumbs up yes'], ['👎', 'thumbs down no'], ['👏', 'clap'], ['🙌', 'raised hands'],
  ['🙏', 'pray thanks'], ['💪', 'muscle strong'], ['👋', 'wave hello'], ['✌️', 'victory'], ['👌', 'ok'], ['🤞', 'fingers crossed'],
  ['👀', 'eyes look'], ['🧠', 'brain'], ['❤️', 'heart love'], ['🧡', 'orange heart'], ['💛', 'yellow heart'], ['💚', 'green heart'],
  ['💙', 'blue heart'], ['💜', 'purple heart'], ['💔', 'broken heart'], ['🔥', 'fire'], ['✨', 'sparkles'], ['⭐', 'star'],
  ['🎉', 'tada celebrate'], ['🎊', 'confetti'], ['🎁', 'gift'], ['🏆', 'trophy'], ['🚀', 'rocket ship'], ['💡', 'idea bulb'],
  ['✅', 'check done'], ['❌', 'cross no'], ['⚠️', 'warning'], ['❓', 'question'], ['❗', 'exclamation'], ['💯', 'hundred'],
  ['📌', 'pin'], ['📎', 'paperclip'], ['📅', 'calendar'], ['📈', 'chart up'], ['📉', 'chart down'], ['📝', 'memo note'],
  ['💬', 'speech'], ['📞', 'phone call'], ['📧', 'email'], ['🔒', 'lock'], ['🔑', 'key'], ['🛠️', 'tools'],
  ['🐛', 'bug'], ['☕', 'coffee'], ['🍕', 'pizza'], ['🍻', 'beers cheers'], ['🌞', 'sun'], ['🌧️', 'rain'],
];

export function searchEmoji(q: string): readonly (readonly [string, string])[] {
  const s = q.trim().toLowerCase();
  return s ? EMOJI.filter(([e, name]) => name.includes(s) || e === s) : EMOJI;
}
