/**
 * `npm run gen:api`: web/openapi.json → src/api/schema.d.ts with openapi-typescript.
 *
 * openapi-typescript files every operation under `operations[operationId]`, so two operations
 * sharing an id (e.g. identity's and chat's `list_members`) silently become one and the other
 * path gets the wrong parameters and body. Operations whose id is not unique are generated
 * inline under their path instead (their id is dropped from the copy fed to the generator), and
 * the duplicates are reported so the backend can rename them.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const web = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const doc = JSON.parse(readFileSync(join(web, 'openapi.json'), 'utf8'));
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

const seen = new Map();
for (const [path, item] of Object.entries(doc.paths ?? {})) {
  for (const m of METHODS) {
    const id = item[m]?.operationId;
    if (id) seen.set(id, [...(seen.get(id) ?? []), `${m.toUpperCase()} ${path}`]);
  }
}
const dupes = [...seen].filter(([, where]) => where.length > 1);
for (const [path, item] of Object.entries(doc.paths ?? {})) {
  for (const m of METHODS) {
    if (item[m] && dupes.some(([id]) => id === item[m].operationId)) delete item[m].operationId;
  }
}
for (const [id, where] of dupes)
  console.warn(`warning: operationId "${id}" is used by ${where.join(' and ')}; generated inline`);

const dir = mkdtempSync(join(tmpdir(), 'wamage-openapi-'));
try {
  const input = join(dir, 'openapi.json');
  writeFileSync(input, JSON.stringify(doc));
  execFileSync(join(web, 'node_modules/.bin/openapi-typescript'), [input, '-o', join(web, 'src/api/schema.d.ts')], {
    stdio: 'inherit',
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
