import { Badge, CloseButton } from '@mantine/core';

import { textOn } from '../lib/organize';

/** A tag in its own colour; with `onRemove`, a small remove button. */
export function TagBadge({
  name,
  color,
  onRemove,
  size = 'sm',
}: {
  name: string;
  color: string;
  onRemove?: () => void;
  size?: 'xs' | 'sm' | 'md';
}) {
  return (
    <Badge
      size={size}
      radius="sm"
      variant="filled"
      color={color}
      autoContrast={false}
      style={{ color: textOn(color), textTransform: 'none' }}
      data-testid="tag-chip"
      rightSection={
        onRemove ? (
          <CloseButton
            size="xs"
            variant="transparent"
            style={{ color: textOn(color) }}
            aria-label={`Remove tag ${name}`}
            onClick={(e) => {
              e.stopPropagation();
              onRemove();
            }}
          />
        ) : undefined
      }
    >
      {name}
    </Badge>
  );
}
