import { AppShell, Badge, Burger, Group, Menu, NavLink, ScrollArea, Text, UnstyledButton } from '@mantine/core';
import { useDisclosure } from '@mantine/hooks';
import {
  IconAddressBook,
  IconChevronDown,
  IconFileText,
  IconInbox,
  IconLogout,
  IconMessages,
  IconRoute,
  IconSend,
  IconSettings,
  IconUser,
} from '@tabler/icons-react';
import { useQueryClient } from '@tanstack/react-query';
import { Link, Outlet, useLocation, useNavigate } from 'react-router';

import { useChannels } from '../api/chat';
import { signOut } from '../auth/session';
import { CampaignSync } from '../chat/CampaignSync';
import { ChatSync } from '../chat/ChatSync';
import { InboxSync } from '../chat/InboxSync';
import { SocketProvider } from '../chat/SocketProvider';
import { totals } from '../lib/chat/cache';
import { useCurrent } from '../auth/useCurrent';
import { RoleBadge } from './RoleBadge';
import { UserAvatar } from './UserAvatar';

export const NAV = [
  { to: '/inbox', label: 'Inbox', icon: IconInbox },
  { to: '/contacts', label: 'Contacts', icon: IconAddressBook },
  { to: '/campaigns', label: 'Campaigns', icon: IconSend },
  { to: '/templates', label: 'Templates', icon: IconFileText },
  { to: '/chat', label: 'Team chat', icon: IconMessages },
  { to: '/workflows', label: 'Workflows', icon: IconRoute },
  { to: '/settings', label: 'Settings', icon: IconSettings },
] as const;

/** Unread chat messages on the "Team chat" entry (mentions in red). */
function ChatNavBadge() {
  const channels = useChannels();
  const t = totals(channels.data ?? []);
  if (t.unread === 0 && t.mentions === 0) return null;
  return (
    <Badge size="sm" color={t.mentions > 0 ? 'red' : 'teal'} data-testid="chat-nav-badge">
      {t.unread + t.mentions > 99 ? '99+' : Math.max(t.unread, t.mentions)}
    </Badge>
  );
}

export function AppLayout() {
  return (
    <SocketProvider>
      <ChatSync />
      <InboxSync />
      <CampaignSync />
      <Shell />
    </SocketProvider>
  );
}

function Shell() {
  const [opened, { toggle, close }] = useDisclosure();
  const { pathname } = useLocation();
  const { user, organization, role } = useCurrent();
  const navigate = useNavigate();
  const queryClient = useQueryClient();

  const logout = async () => {
    await signOut(queryClient);
    navigate('/login', { replace: true });
  };

  return (
    <AppShell
      header={{ height: 56 }}
      navbar={{ width: 220, breakpoint: 'sm', collapsed: { mobile: !opened } }}
      padding="lg"
    >
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between" wrap="nowrap">
          <Group gap="sm" wrap="nowrap">
            <Burger opened={opened} onClick={toggle} hiddenFrom="sm" size="sm" aria-label="Toggle navigation" />
            <Text component={Link} to="/inbox" fw={800} c="teal" fz="lg">
              Wamage
            </Text>
            <Text c="dimmed" visibleFrom="xs">
              /
            </Text>
            <Text fw={600} truncate maw={260} data-testid="org-name">
              {organization.name}
            </Text>
          </Group>
          <Menu position="bottom-end" width={220} withinPortal>
            <Menu.Target>
              <UnstyledButton aria-label="User menu" data-testid="user-menu">
                <Group gap={8} wrap="nowrap">
                  <UserAvatar name={user.name} url={user.avatar_url} size={30} />
                  <div style={{ lineHeight: 1.1 }}>
                    <Text size="sm" fw={500} truncate maw={160} data-testid="user-name">
                      {user.name}
                    </Text>
                    {user.status_text && (
                      <Text size="xs" c="dimmed" truncate maw={160}>
                        {user.status_text}
                      </Text>
                    )}
                  </div>
                  <IconChevronDown size={14} />
                </Group>
              </UnstyledButton>
            </Menu.Target>
            <Menu.Dropdown>
              <Menu.Label>
                <Group justify="space-between">
                  <Text size="xs" truncate maw={120}>
                    {user.email}
                  </Text>
                  <RoleBadge role={role} />
                </Group>
              </Menu.Label>
              <Menu.Item component={Link} to="/settings/profile" leftSection={<IconUser size={16} />}>
                Profile
              </Menu.Item>
              <Menu.Item color="red" leftSection={<IconLogout size={16} />} onClick={() => void logout()}>
                Log out
              </Menu.Item>
            </Menu.Dropdown>
          </Menu>
        </Group>
      </AppShell.Header>

      <AppShell.Navbar p="xs" aria-label="Main navigation">
        <ScrollArea>
          {NAV.map((item) => (
            <NavLink
              key={item.to}
              component={Link}
              to={item.to}
              label={item.label}
              leftSection={<item.icon size={18} stroke={1.6} />}
              rightSection={item.to === '/chat' ? <ChatNavBadge /> : undefined}
              active={pathname === item.to || pathname.startsWith(`${item.to}/`)}
              onClick={close}
              style={{ borderRadius: 'var(--mantine-radius-sm)' }}
            />
          ))}
        </ScrollArea>
      </AppShell.Navbar>

      <AppShell.Main>
        <Outlet />
      </AppShell.Main>
    </AppShell>
  );
}
