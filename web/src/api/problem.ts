/**
 * RFC 9457 problem details → one error type the UI understands. Every failed API call becomes an
 * `ApiError`, whether the server sent a proper problem body, some other body, or nothing at all
 * (network failure), so pages and forms only ever deal with this shape.
 */
export interface FieldError {
  field: string;
  message: string;
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly title: string;
  readonly detail: string | undefined;
  readonly errors: FieldError[];
  readonly requestId: string | undefined;
  /** Seconds from a 429's Retry-After header, when present. */
  readonly retryAfter: number | undefined;

  constructor(init: {
    status: number;
    code: string;
    title: string;
    detail?: string | undefined;
    errors?: FieldError[] | undefined;
    requestId?: string | undefined;
    retryAfter?: number | undefined;
  }) {
    super(init.detail ? `${init.title}: ${init.detail}` : init.title);
    this.name = 'ApiError';
    this.status = init.status;
    this.code = init.code;
    this.title = init.title;
    this.detail = init.detail;
    this.errors = init.errors ?? [];
    this.requestId = init.requestId;
    this.retryAfter = init.retryAfter;
  }

  /** Message for a toast or an alert: the detail when the server gave one, else the title. */
  get userMessage(): string {
    if (this.code === 'rate_limited' && this.retryAfter !== undefined) {
      return `Too many attempts. Try again in ${this.retryAfter} s.`;
    }
    return this.detail || this.title;
  }

  /** The field errors keyed by field name (first message wins). */
  fieldErrors(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const e of this.errors) {
      const key = normalizeField(e.field);
      if (!(key in out)) out[key] = e.message;
    }
    return out;
  }
}

export function isApiError(e: unknown): e is ApiError {
  return e instanceof ApiError;
}

/** Accepts `password`, `/password` (JSON pointer) and `body.password` and returns `password`. */
export function normalizeField(field: string): string {
  let f = field.trim();
  if (f.startsWith('/')) f = f.slice(1).replaceAll('/', '.');
  if (f.startsWith('body.')) f = f.slice(5);
  return f;
}

const STATUS_TITLES: Record<number, [string, string]> = {
  400: ['bad_request', 'Bad request'],
  401: ['unauthorized', 'You are not signed in'],
  403: ['forbidden', 'You are not allowed to do that'],
  404: ['not_found', 'Not found'],
  409: ['conflict', 'Conflict'],
  410: ['gone', 'No longer available'],
  413: ['payload_too_large', 'The upload is too large'],
  422: ['validation_failed', 'Some fields are not valid'],
  429: ['rate_limited', 'Too many requests'],
  500: ['internal', 'Something went wrong on the server'],
  502: ['bad_gateway', 'The server is unreachable'],
  503: ['unavailable', 'The server is not ready'],
};

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseFieldErrors(v: unknown): FieldError[] {
  if (!Array.isArray(v)) return [];
  const out: FieldError[] = [];
  for (const e of v) {
    if (isRecord(e) && typeof e.field === 'string' && typeof e.message === 'string') {
      out.push({ field: e.field, message: e.message });
    }
  }
  return out;
}

function parseRetryAfter(h: string | null): number | undefined {
  if (!h) return undefined;
  const n = Number(h);
  if (Number.isFinite(n)) return Math.max(0, Math.ceil(n));
  const at = Date.parse(h);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

/**
 * Builds an `ApiError` from a non-2xx response. `body` is the already-read body (parsed JSON when
 * it was JSON, else text or undefined) because the response stream can only be read once.
 */
export function problemFromResponse(
  response: Pick<Response, 'status' | 'statusText' | 'headers'>,
  body: unknown,
): ApiError {
  const [fallbackCode, fallbackTitle] = STATUS_TITLES[response.status] ?? [
    response.status >= 500 ? 'internal' : 'http_error',
    response.statusText || `Request failed (${response.status})`,
  ];
  const retryAfter = parseRetryAfter(response.headers.get('Retry-After'));
  const requestIdHeader = response.headers.get('X-Request-Id') ?? undefined;
  if (isRecord(body)) {
    const str = (k: string) => (typeof body[k] === 'string' && body[k] !== '' ? (body[k] as string) : undefined);
    return new ApiError({
      status: typeof body.status === 'number' ? body.status : response.status,
      code: str('code') ?? fallbackCode,
      title: str('title') ?? fallbackTitle,
      detail: str('detail'),
      errors: parseFieldErrors(body.errors),
      requestId: str('request_id') ?? requestIdHeader,
      retryAfter,
    });
  }
  return new ApiError({
    status: response.status,
    code: fallbackCode,
    title: fallbackTitle,
    detail:
      typeof body === 'string' && body.length > 0 && body.length < 300 && !body.trimStart().startsWith('<')
        ? body
        : undefined,
    requestId: requestIdHeader,
    retryAfter,
  });
}

export function networkError(cause: unknown): ApiError {
  const err = new ApiError({
    status: 0,
    code: 'network_error',
    title: 'Cannot reach the server',
    detail: 'Check your connection and try again.',
  });
  (err as { cause?: unknown }).cause = cause;
  return err;
}
