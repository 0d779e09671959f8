/** Template calls (issue 6): query keys, read hooks and writes. */
import { useQuery } from '@tanstack/react-query';

import { raw } from '../../api/untyped';
import type {
  PreviewIn,
  PreviewOut,
  SyncOut,
  TemplateFilters,
  TemplateIn,
  TemplateOut,
  TemplatePatch,
  ValidateOut,
} from './types';

export const templateKeys = {
  all: ['templates'] as const,
  lists: ['templates', 'list'] as const,
  list: (f: TemplateFilters) => ['templates', 'list', f] as const,
  one: (id: string) => ['templates', 'one', id] as const,
};

const path = (id: string, rest = '') => `/api/v1/templates/${encodeURIComponent(id)}${rest}`;

export const fetchTemplates = (f: TemplateFilters) =>
  raw
    .get<{ items: TemplateOut[] }>('/api/v1/templates', {
      channel_id: f.channelId ?? undefined,
      status: f.status ?? undefined,
      q: f.q.trim() || undefined,
    })
    .then((r) => r.items);

export function useTemplates(f: TemplateFilters, enabled = true) {
  return useQuery({ queryKey: templateKeys.list(f), queryFn: () => fetchTemplates(f), enabled });
}

/** While Meta reviews a template its status comes by socket event; polling is the fallback. */
export function useTemplate(id: string | null) {
  return useQuery({
    queryKey: templateKeys.one(id ?? ''),
    queryFn: () => raw.get<TemplateOut>(path(id!)),
    enabled: !!id,
    refetchInterval: (q) => (q.state.data?.status === 'pending' ? 10_000 : false),
  });
}

export const createTemplate = (body: TemplateIn) => raw.post<TemplateOut>('/api/v1/templates', body);
export const updateTemplate = (id: string, body: TemplatePatch) => raw.patch<TemplateOut>(path(id), body);
export const deleteTemplate = (id: string) => raw.del(path(id));
export const submitTemplate = (id: string) => raw.post<TemplateOut>(path(id, '/submit'));
export const validateTemplate = (body: TemplateIn) => raw.post<ValidateOut>('/api/v1/templates/validate', body);
export const syncTemplates = (channelId: string) =>
  raw.post<SyncOut>('/api/v1/templates/sync', { channel_id: channelId });
export const previewTemplate = (id: string, body: PreviewIn) => raw.post<PreviewOut>(path(id, '/preview'), body);
