export const MIN_PASSWORD = 10;

export function passwordRule(v: string): string | null {
  return v.length >= MIN_PASSWORD ? null : `Use at least ${MIN_PASSWORD} characters`;
}

export function confirmRule(field: string) {
  return (v: string, values: Record<string, unknown>) => (v === values[field] ? null : 'Passwords do not match');
}
