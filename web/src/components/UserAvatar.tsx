import { Avatar, type AvatarProps } from '@mantine/core';

export function initials(name: string): string {
  const parts = name.trim().split(/\s+/).filter(Boolean);
  const first = parts[0]?.[0] ?? '?';
  const last = parts.length > 1 ? (parts[parts.length - 1]?.[0] ?? '') : '';
  return (first + last).toUpperCase();
}

export function UserAvatar({ name, url, ...rest }: { name: string; url: string | null | undefined } & AvatarProps) {
  return (
    <Avatar src={url ?? null} alt={name} color="teal" radius="xl" {...rest}>
      {initials(name)}
    </Avatar>
  );
}
