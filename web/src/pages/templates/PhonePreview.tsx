/**
 * A template as the customer sees it on WhatsApp: header (text or a media placeholder), body with
 * WhatsApp formatting and the variables highlighted (an unfilled `{{n}}` in red), footer, buttons.
 * Telegram / Sandbox ("local") templates show the same parts as a plain bubble.
 */
import { Stack, Text } from '@mantine/core';
import {
  IconCopy,
  IconExternalLink,
  IconFileText,
  IconArrowBackUp,
  IconPhone,
  IconPhoto,
  IconVideo,
} from '@tabler/icons-react';
import type { ReactNode } from 'react';

import { formatWhatsApp, type PreviewModel, type Segment, type Styled } from '../../lib/templates/builder';
import './templates.css';

function StyledText({ parts }: { parts: Styled[] }) {
  return (
    <>
      {parts.map((p, i) => {
        let node: ReactNode = p.text;
        if (p.styles.includes('mono')) node = <code>{node}</code>;
        if (p.styles.includes('strike')) node = <s>{node}</s>;
        if (p.styles.includes('italic')) node = <em>{node}</em>;
        if (p.styles.includes('bold')) node = <strong>{node}</strong>;
        return <span key={i}>{node}</span>;
      })}
    </>
  );
}

function Segments({ segments }: { segments: Segment[] }) {
  return (
    <>
      {segments.map((s, i) =>
        s.variable ? (
          <span
            key={i}
            className="tpl-var"
            data-missing={s.missing ? 'true' : undefined}
            data-variable={s.variable}
            title={s.missing ? `${s.variable}: no example yet` : s.variable}
          >
            {s.text}
          </span>
        ) : (
          <StyledText key={i} parts={formatWhatsApp(s.text)} />
        ),
      )}
    </>
  );
}

const MEDIA_ICON = { image: IconPhoto, video: IconVideo, document: IconFileText } as const;
const BUTTON_ICON = {
  quick_reply: IconArrowBackUp,
  url: IconExternalLink,
  phone: IconPhone,
  copy_code: IconCopy,
} as const;

export function PhonePreview({
  model,
  title = 'Preview',
  channelName,
  testId = 'template-preview',
}: {
  model: PreviewModel;
  title?: string;
  channelName?: string;
  testId?: string;
}) {
  const empty = !model.header && model.body.every((s) => !s.text.trim()) && !model.footer && model.buttons.length === 0;
  return (
    <Stack gap={6} align="center" w="100%">
      <Text size="sm" fw={500} c="dimmed" w="100%">
        {title}
      </Text>
      <div className="tpl-phone" role="figure" aria-label={title} data-testid={testId}>
        <div className="tpl-phone-bar">{channelName ?? 'Your business'}</div>
        {empty ? (
          <Text size="sm" c="dimmed" ta="center" mt="xl">
            Type a body to see the message here.
          </Text>
        ) : (
          <>
            <div className="tpl-bubble">
              {model.header?.format === 'text' && model.header.text && (
                <div className="tpl-header-text" data-testid="preview-header">
                  <Segments segments={model.header.text} />
                </div>
              )}
              {model.header && model.header.format !== 'text' && (
                <MediaHeader format={model.header.format} url={model.header.mediaUrl} />
              )}
              <div className="tpl-body" data-testid="preview-body">
                <Segments segments={model.body} />
              </div>
              {model.footer && (
                <div className="tpl-footer" data-testid="preview-footer">
                  {model.footer}
                </div>
              )}
              <div className="tpl-time">12:00</div>
            </div>
            {model.buttons.length > 0 && (
              <div className="tpl-buttons">
                {model.buttons.map((b, i) => {
                  const Icon = BUTTON_ICON[b.type];
                  return (
                    <div key={i} className="tpl-button" data-testid="preview-button" title={b.detail}>
                      <Icon size={15} />
                      <span>{b.label}</span>
                    </div>
                  );
                })}
              </div>
            )}
          </>
        )}
      </div>
    </Stack>
  );
}

function MediaHeader({ format, url }: { format: 'image' | 'video' | 'document'; url?: string | undefined }) {
  const Icon = MEDIA_ICON[format];
  const isHttp = !!url && /^https?:\/\//i.test(url);
  return (
    <div className="tpl-media" data-testid="preview-media" data-format={format}>
      {format === 'image' && isHttp ? (
        <img src={url} alt="Header sample" referrerPolicy="no-referrer" />
      ) : (
        <>
          <Icon size={28} />
          <span>{format === 'document' ? 'Document' : format === 'video' ? 'Video' : 'Image'}</span>
        </>
      )}
    </div>
  );
}
