import { describe, expect, it } from 'vitest';

import { AVATAR_MAX_BYTES, checkAvatar } from './avatar';

describe('checkAvatar', () => {
  it('accepts the four image types up to 2 MB', () => {
    for (const type of ['image/png', 'image/jpeg', 'image/webp', 'image/gif'])
      expect(checkAvatar({ type, size: AVATAR_MAX_BYTES })).toBeNull();
  });

  it('refuses other types and bigger files', () => {
    expect(checkAvatar({ type: 'image/svg+xml', size: 10 })).toBe('Use a PNG, JPEG, WebP or GIF image');
    expect(checkAvatar({ type: 'image/png', size: AVATAR_MAX_BYTES + 1 })).toBe('The image must be 2 MB or smaller');
  });
});
