/** Limits of avatar and contact photo uploads, mirroring the server's, so the user hears about a
 * wrong file before it is uploaded (the server judges the bytes and has the last word). */
export const AVATAR_TYPES = ['image/png', 'image/jpeg', 'image/webp', 'image/gif'];
export const AVATAR_MAX_BYTES = 2 * 1024 * 1024;

export function checkAvatar(file: { type: string; size: number }): string | null {
  if (!AVATAR_TYPES.includes(file.type)) return 'Use a PNG, JPEG, WebP or GIF image';
  if (file.size > AVATAR_MAX_BYTES) return 'The image must be 2 MB or smaller';
  return null;
}
