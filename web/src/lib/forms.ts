/**
 * Puts a problem body's `errors: [{field, message}]` under the matching inputs of a Mantine form
 * and returns what is left for a form-level alert (or null when every error found its field).
 */
import type { UseFormReturnType } from '@mantine/form';

import { isApiError, networkError } from '../api/problem';

export interface ApplyOptions {
  /** API field name → form field name, where they differ. */
  fields?: Record<string, string>;
  /** Problem `code` → form field, for errors the server reports without `errors[]` (e.g. 409 `email_taken`). */
  codes?: Record<string, string>;
}

export function applyApiError<T extends Record<string, any>>(
  form: UseFormReturnType<T>,
  err: unknown,
  options: ApplyOptions = {},
): string | null {
  const e = isApiError(err) ? err : networkError(err);
  const fieldMap = options.fields ?? {};
  const known = new Set(Object.keys(form.getValues()));
  const codeField = options.codes?.[e.code];
  if (e.errors.length === 0 && codeField && known.has(codeField)) {
    form.setFieldError(codeField, e.userMessage);
    return null;
  }
  const unmatched: string[] = [];
  let matched = 0;
  for (const [apiField, message] of Object.entries(e.fieldErrors())) {
    const field = fieldMap[apiField] ?? apiField;
    if (known.has(field)) {
      form.setFieldError(field, message);
      matched++;
    } else {
      unmatched.push(apiField ? `${apiField}: ${message}` : message);
    }
  }
  if (matched > 0 && unmatched.length === 0) return null;
  if (unmatched.length > 0) return `${e.userMessage} (${unmatched.join('; ')})`;
  return e.userMessage;
}

export function errorMessage(err: unknown): string {
  return isApiError(err) ? err.userMessage : err instanceof Error ? err.message : String(err);
}
