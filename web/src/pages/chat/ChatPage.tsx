/**
 * Team chat at /chat and /chat/:channelId. The open side panel and a jump target live in the
 * URL (`?panel=thread&thread=…`, `?panel=pins|search|settings`, `?around=<message id>`), so they
 * survive a reload and can be linked.
 */
import { Box, Button, Group, Stack } from '@mantine/core';
import { useCallback, useMemo, useState } from 'react';
import { useNavigate, useParams, useSearchParams } from 'react-router';

import { useChannel, useChannels } from '../../api/chat';
import type { ChannelOut, MessageOut } from '../../api/chatTypes';
import { EmptyState, ErrorState, LoadingState } from '../../components/QueryState';
import { ChannelSettings } from './ChannelSettings';
import { ChannelSidebar } from './ChannelSidebar';
import { ChannelView, type Panel } from './ChannelView';
import { BrowseChannelsModal, ForwardModal, NewChannelModal, NewMessageModal } from './Modals';
import { PinsPanel, SearchPanel, ThreadPanel } from './Panels';
import './chat.css';

export function ChatPage() {
  const { channelId = null } = useParams();
  const [params, setParams] = useSearchParams();
  const navigate = useNavigate();
  const channels = useChannels();
  const fromList = channels.data?.find((c) => c.id === channelId);
  const detail = useChannel(channelId);
  // The list entry carries the caller's live counters; the detail answers for channels not in the list.
  const channel: ChannelOut | undefined = fromList ?? detail.data;

  const [modal, setModal] = useState<'browse' | 'channel' | 'message' | null>(null);
  const [forwarding, setForwarding] = useState<MessageOut | null>(null);
  const [quote, setQuote] = useState<MessageOut | null>(null);

  const panel = (params.get('panel') as Panel) ?? null;
  const threadId = params.get('thread');
  const around = params.get('around');

  const setPanel = useCallback(
    (p: Panel, extra: Record<string, string> = {}) => {
      setParams(
        (prev) => {
          const next = new URLSearchParams(prev);
          next.delete('panel');
          next.delete('thread');
          if (p) next.set('panel', p);
          for (const [k, v] of Object.entries(extra)) next.set(k, v);
          return next;
        },
        { replace: true },
      );
    },
    [setParams],
  );

  const jump = useCallback(
    (m: MessageOut) => {
      const keep = panel && panel !== 'thread' ? `&panel=${panel}` : '';
      if (m.thread_id) navigate(`/chat/${m.channel_id}?panel=thread&thread=${m.thread_id}`);
      else navigate(`/chat/${m.channel_id}?around=${m.id}${keep}`);
    },
    [navigate, panel],
  );

  const actions = useMemo(
    () => ({
      onReplyInThread: (m: MessageOut) => setPanel('thread', { thread: m.id }),
      onQuote: (m: MessageOut) => setQuote(m),
      onForward: (m: MessageOut) => setForwarding(m),
    }),
    [setPanel],
  );

  let main;
  if (!channelId) {
    main = (
      <Stack justify="center" style={{ flex: 1 }}>
        <EmptyState
          title="Pick a conversation"
          action={
            <Group gap="xs">
              <Button size="xs" variant="light" onClick={() => setModal('browse')}>
                Browse channels
              </Button>
              <Button size="xs" variant="light" onClick={() => setModal('message')}>
                New message
              </Button>
            </Group>
          }
        >
          Choose a channel or a direct message on the left, or start a new one.
        </EmptyState>
      </Stack>
    );
  } else if (!channel) {
    main = (
      <Box style={{ flex: 1 }} p="md">
        {detail.isError ? (
          <ErrorState
            error={detail.error}
            onRetry={() => void detail.refetch()}
            title="Could not open this conversation"
          />
        ) : (
          <LoadingState label="Opening…" />
        )}
      </Box>
    );
  } else {
    main = (
      <>
        <ChannelView
          channel={channel}
          around={around}
          panel={panel}
          onPanel={(p) => setPanel(p)}
          onJumpToLatest={() => navigate(`/chat/${channel.id}${panel && panel !== 'thread' ? `?panel=${panel}` : ''}`)}
          quote={quote?.channel_id === channel.id ? quote : null}
          onClearQuote={() => setQuote(null)}
          {...actions}
        />
        {panel === 'thread' && threadId && (
          <ThreadPanel
            key={threadId}
            channel={channel}
            parentId={threadId}
            onClose={() => setPanel(null)}
            onForward={actions.onForward}
          />
        )}
        {panel === 'pins' && <PinsPanel channel={channel} onClose={() => setPanel(null)} onJump={jump} />}
        {panel === 'search' && <SearchPanel channel={channel} onClose={() => setPanel(null)} onJump={jump} />}
        {panel === 'settings' && <ChannelSettings key={channel.id} channel={channel} onClose={() => setPanel(null)} />}
      </>
    );
  }

  return (
    <Box
      // Fill the app shell's main area (header 56 px, main padding on both sides).
      h="calc(100dvh - 56px - 2 * var(--mantine-spacing-lg))"
      m="calc(-1 * var(--mantine-spacing-xs))"
      style={{
        display: 'flex',
        border: '1px solid var(--mantine-color-default-border)',
        borderRadius: 'var(--mantine-radius-md)',
        overflow: 'hidden',
      }}
      data-testid="chat-page"
    >
      <ChannelSidebar
        activeId={channelId}
        onBrowse={() => setModal('browse')}
        onNewChannel={() => setModal('channel')}
        onNewMessage={() => setModal('message')}
      />
      <Box style={{ flex: 1, display: 'flex', minWidth: 0 }}>{main}</Box>
      <BrowseChannelsModal opened={modal === 'browse'} onClose={() => setModal(null)} />
      <NewChannelModal opened={modal === 'channel'} onClose={() => setModal(null)} />
      <NewMessageModal opened={modal === 'message'} onClose={() => setModal(null)} />
      <ForwardModal message={forwarding} onClose={() => setForwarding(null)} />
    </Box>
  );
}
