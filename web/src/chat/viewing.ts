/**
 * Which chat channel is on screen, so live messages there are read at once instead of bumping
 * its unread badge. Set by the channel view; "visible" also needs the tab to be in front.
 */
let current: string | null = null;

export function setViewingChannel(id: string | null): void {
  current = id;
}

export function viewingChannel(): string | null {
  if (typeof document !== 'undefined' && document.visibilityState === 'hidden') return null;
  return current;
}

/** The same for the inbox: the conversation open in the thread view. */
let currentConversation: string | null = null;

export function setViewingConversation(id: string | null): void {
  currentConversation = id;
}

export function viewingConversation(): string | null {
  if (typeof document !== 'undefined' && document.visibilityState === 'hidden') return null;
  return currentConversation;
}
