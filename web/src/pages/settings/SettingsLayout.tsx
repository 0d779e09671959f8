import { Box, Group, NavLink, Stack, Text } from '@mantine/core';
import {
  IconAddressBook,
  IconBuilding,
  IconDevices,
  IconKey,
  IconMessageBolt,
  IconPlugConnected,
  IconTags,
  IconUsersPlus,
  IconUser,
  IconUsers,
  IconUsersGroup,
} from '@tabler/icons-react';
import { Link, Outlet, useLocation } from 'react-router';

const SECTIONS = [
  { to: '/settings/profile', label: 'Profile', icon: IconUser },
  { to: '/settings/organization', label: 'Organization', icon: IconBuilding },
  { to: '/settings/members', label: 'Members & roles', icon: IconUsers },
  { to: '/settings/teams', label: 'Teams', icon: IconUsersGroup },
  { to: '/settings/channels', label: 'Channels', icon: IconPlugConnected },
  { to: '/settings/canned-responses', label: 'Canned responses', icon: IconMessageBolt },
  { to: '/settings/contact-fields', label: 'Contact fields', icon: IconAddressBook },
  { to: '/settings/tags', label: 'Tags', icon: IconTags },
  { to: '/settings/groups', label: 'Groups', icon: IconUsersPlus },
  { to: '/settings/api-keys', label: 'API keys', icon: IconKey },
  { to: '/settings/sessions', label: 'Sessions', icon: IconDevices },
] as const;

export function SettingsLayout() {
  const { pathname } = useLocation();
  return (
    <Group align="flex-start" gap="xl" wrap="wrap">
      <Stack gap={2} w={210} component="nav" aria-label="Settings">
        <Text size="xs" fw={700} c="dimmed" tt="uppercase" px="sm" mb={4}>
          Settings
        </Text>
        {SECTIONS.map((s) => (
          <NavLink
            key={s.to}
            component={Link}
            to={s.to}
            label={s.label}
            leftSection={<s.icon size={16} stroke={1.6} />}
            active={pathname === s.to || pathname.startsWith(`${s.to}/`)}
            variant="light"
            style={{ borderRadius: 'var(--mantine-radius-sm)' }}
          />
        ))}
      </Stack>
      <Box style={{ flex: 1, minWidth: 320 }} maw={960}>
        <Outlet />
      </Box>
    </Group>
  );
}
