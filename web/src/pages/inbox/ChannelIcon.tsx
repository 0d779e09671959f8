import { IconBrandTelegram, IconBrandWhatsapp, IconFlask } from '@tabler/icons-react';

import { KIND_LABEL } from '../../lib/inbox/channels';
import type { ChannelKind } from '../../lib/inbox/types';

const ICON = { whatsapp: IconBrandWhatsapp, telegram: IconBrandTelegram, sandbox: IconFlask } as const;
const COLOR: Record<ChannelKind, string> = {
  whatsapp: 'var(--mantine-color-green-7)',
  telegram: 'var(--mantine-color-blue-6)',
  sandbox: 'var(--mantine-color-grape-6)',
};

/** The channel kind's logo (WhatsApp, Telegram) or a flask for the sandbox, labelled for screen readers. */
export function ChannelIcon({ kind, size = 16 }: { kind: ChannelKind; size?: number }) {
  const Icon = ICON[kind];
  return <Icon size={size} color={COLOR[kind]} aria-label={KIND_LABEL[kind]} role="img" data-testid={`kind-${kind}`} />;
}
