import { ActionIcon, Popover, SimpleGrid, Stack, Text, TextInput, Tooltip, UnstyledButton } from '@mantine/core';
import { IconMoodSmile } from '@tabler/icons-react';
import { useState, type ReactNode } from 'react';

import { searchEmoji } from '../../lib/chat/emoji';

export function EmojiGrid({ onPick }: { onPick: (emoji: string) => void }) {
  const [q, setQ] = useState('');
  const list = searchEmoji(q);
  return (
    <Stack gap={6} w={264} data-testid="emoji-picker">
      <TextInput
        size="xs"
        placeholder="Search emoji"
        aria-label="Search emoji"
        value={q}
        onChange={(e) => setQ(e.currentTarget.value)}
      />
      {list.length === 0 ? (
        <Text size="xs" c="dimmed" ta="center" py="sm">
          No emoji match
        </Text>
      ) : (
        <SimpleGrid cols={8} spacing={2} verticalSpacing={2} mah={200} style={{ overflowY: 'auto' }}>
          {list.map(([e, name]) => (
            <UnstyledButton
              key={e}
              aria-label={`Emoji ${name}`}
              title={name}
              onClick={() => onPick(e)}
              fz={20}
              ta="center"
            >
              {e}
            </UnstyledButton>
          ))}
        </SimpleGrid>
      )}
    </Stack>
  );
}

/** An icon button opening the emoji grid; closes after a pick. */
export function EmojiButton({
  onPick,
  label = 'Insert emoji',
  icon,
}: {
  onPick: (e: string) => void;
  label?: string;
  icon?: ReactNode;
}) {
  const [open, setOpen] = useState(false);
  return (
    <Popover opened={open} onChange={setOpen} position="top-end" withinPortal shadow="md">
      <Popover.Target>
        <Tooltip label={label} disabled={open}>
          <ActionIcon variant="subtle" color="gray" aria-label={label} onClick={() => setOpen((o) => !o)}>
            {icon ?? <IconMoodSmile size={18} />}
          </ActionIcon>
        </Tooltip>
      </Popover.Target>
      <Popover.Dropdown>
        <EmojiGrid
          onPick={(e) => {
            onPick(e);
            setOpen(false);
          }}
        />
      </Popover.Dropdown>
    </Popover>
  );
}
