import { Badge } from '@mantine/core';

import { ROLE_LABEL, type Role } from '../api/types';

const COLOR: Record<Role, string> = { owner: 'grape', admin: 'blue', agent: 'gray' };

export function RoleBadge({ role }: { role: Role }) {
  return (
    <Badge color={COLOR[role]} variant="light">
      {ROLE_LABEL[role]}
    </Badge>
  );
}
