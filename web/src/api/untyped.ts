/**
 * Calls to endpoints the generated OpenAPI document does not describe yet (issue 6: templates and
 * campaigns, written against /work/notes/api-6.md while the backend lands). They go through the same
 * client as every other call — bearer token, one refresh on 401, `unwrap` → data or `ApiError` —
 * with the path typing loosened here only. The shapes are hand-written in `lib/templates/types.ts`
 * and `lib/campaigns/types.ts`; once `npm run gen:api` knows the paths, these calls can move to
 * the typed `client` one by one.
 */
import { client, unwrap } from './client';

type Query = Record<string, string | number | boolean | undefined>;
type Result = { data?: unknown; error?: unknown; response: Response };
interface Init {
  params?: { query?: Query };
  body?: unknown;
  parseAs?: 'json' | 'blob' | 'text';
}
interface Loose {
  GET(path: string, init?: Init): Promise<Result>;
  POST(path: string, init?: Init): Promise<Result>;
  PATCH(path: string, init?: Init): Promise<Result>;
  DELETE(path: string, init?: Init): Promise<Result>;
}

const loose = client as unknown as Loose;

/** Drops undefined and empty-string values, so optional filters stay out of the URL. */
function cleanQuery(q: Query | undefined): Query | undefined {
  if (!q) return undefined;
  const out: Query = {};
  for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== '') out[k] = v;
  return out;
}

export const raw = {
  get: <T>(path: string, query?: Query): Promise<T> =>
    unwrap(loose.GET(path, { params: { query: cleanQuery(query) } })) as Promise<T>,
  post: <T>(path: string, body?: unknown): Promise<T> =>
    unwrap(loose.POST(path, body === undefined ? {} : { body })) as Promise<T>,
  patch: <T>(path: string, body: unknown): Promise<T> => unwrap(loose.PATCH(path, { body })) as Promise<T>,
  del: (path: string): Promise<void> => unwrap(loose.DELETE(path)).then(() => undefined),
  /** A file download: the blob and the response (for its `Content-Disposition`). */
  blob: async (path: string): Promise<{ blob: Blob; response: Response }> => {
    const r = await loose.GET(path, { parseAs: 'blob' });
    const blob = (await unwrap(Promise.resolve(r))) as Blob;
    return { blob, response: r.response };
  },
};
