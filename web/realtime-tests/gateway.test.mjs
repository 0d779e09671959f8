/**
 * The Socket.IO gateway with the official `socket.io-client` v4, unmodified, against the real
 * `wamage` binary (fresh data dir, port chosen by the OS). Run with `npm run test:realtime`.
 *
 * Environment:
 *   WAMAGE_BIN  server binary (default /root/.cache/wamage/target/debug/wamage, else ../target/debug/wamage)
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { io } from 'socket.io-client';

const here = dirname(fileURLToPath(import.meta.url));
const bin =
  process.env.WAMAGE_BIN ??
  ['/root/.cache/wamage/target/debug/wamage', resolve(here, '../../target/debug/wamage')].find((p) => existsSync(p));
const WAIT = 10_000;
const PASSWORD = 'correct horse battery';

let server;
let base;
let dataDir;
const sockets = [];

/** Starts `wamage serve` on 127.0.0.1:0 and resolves with its URL (printed on stdout). */
function startServer() {
  assert.ok(bin && existsSync(bin), `wamage binary not found (${bin}): build it or set WAMAGE_BIN`);
  dataDir = mkdtempSync(join(tmpdir(), 'wamage-realtime-'));
  // The server refuses WAMAGE_* variables it does not know (WAMAGE_BIN, WAMAGE_TEST_*).
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WAMAGE_')));
  env.RUST_LOG ??= 'warn';
  server = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error('wamage did not start within 30 s')), 30_000);
    let out = '';
    server.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(/Wamage is running at (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1]);
      }
    });
    server.on('exit', (code) => reject(new Error(`wamage exited early with ${code}`)));
  });
}

async function api(method, path, { token, body } = {}) {
  const res = await fetch(base + path, {
    method,
    headers: {
      ...(body ? { 'content-type': 'application/json' } : {}),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** A new account with its own organisation. */
async function register(email, organization) {
  const res = await api('POST', '/api/v1/auth/register', {
    body: { email, password: PASSWORD, name: email.split('@')[0], organization },
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  return { token: res.body.access_token, userId: res.body.user.id, orgId: res.body.organization.id };
}

/** Invites `email` into `owner`'s organisation and accepts: a second member, signed in. */
async function addMember(owner, email) {
  const inv = await api('POST', '/api/v1/invitations', { token: owner.token, body: { email, role: 'agent' } });
  assert.equal(inv.status, 201, JSON.stringify(inv.body));
  const inviteToken = inv.body.invite_url.split('/').pop();
  const res = await api('POST', `/api/v1/auth/invitations/${inviteToken}/accept`, {
    body: { name: email.split('@')[0], password: PASSWORD },
  });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return { token: res.body.access_token, userId: res.body.user.id, orgId: res.body.organization.id };
}

function connect(auth, opts = {}) {
  const socket = io(base, { auth, reconnection: false, forceNew: true, ...opts });
  sockets.push(socket);
  return socket;
}

/** Resolves with the first `event` whose payload satisfies `pred`. */
function nextEvent(socket, event, pred = () => true) {
  return new Promise((resolveEvent, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, listener);
      reject(new Error(`no ${event} within ${WAIT} ms`));
    }, WAIT);
    function listener(payload) {
      if (pred(payload)) {
        clearTimeout(timer);
        socket.off(event, listener);
        resolveEvent(payload);
      }
    }
    socket.on(event, listener);
  });
}

function connected(socket) {
  return new Promise((resolveConnect, reject) => {
    socket.once('connect', () => resolveConnect());
    socket.once('connect_error', (err) => reject(err));
  });
}

function refused(socket) {
  return new Promise((resolveErr, reject) => {
    socket.once('connect', () => reject(new Error('connected with a bad token')));
    socket.once('connect_error', (err) => resolveErr(err));
  });
}

before(async () => {
  base = await startServer();
});

after(async () => {
  for (const s of sockets) s.disconnect();
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (server.exitCode === null) server.kill('SIGKILL');
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test('refuses a bad, a missing and a forged token with a clear connect error', async () => {
  const bad = await refused(connect({ token: 'not-a-token' }));
  assert.equal(bad.message, 'invalid or expired token');
  const missing = await refused(connect({}));
  assert.match(missing.message, /^missing token/);
  const ana = await register('forger@example.com', 'Forgers');
  const forged = await refused(connect({ token: `${ana.token.slice(0, -2)}xx` }));
  assert.equal(forged.message, 'invalid or expired token');
});

test('presence, typing and join checks between two members, over the upgraded websocket', async () => {
  const ana = await register('ana@example.com', 'Acme');
  const ben = await addMember(ana, 'ben@example.com');

  const a = connect({ token: ana.token });
  await connected(a);
  // The default transports start with long-polling and upgrade to a websocket.
  if (a.io.engine.transport.name !== 'websocket') {
    await new Promise((r) => a.io.engine.once('upgrade', r));
  }
  assert.equal(a.io.engine.transport.name, 'websocket');

  // Ben connecting is announced to Ana's organisation room.
  const benOnline = nextEvent(
    a,
    'presence.changed',
    (e) => e.data.user_id === ben.userId && e.data.status === 'online',
  );
  const b = connect({ token: ben.token }, { transports: ['websocket'] });
  await connected(b);
  const online = await benOnline;
  assert.equal(online.type, 'presence.changed');
  assert.ok(online.id && online.time && online.data.last_seen);

  const list = await api('GET', '/api/v1/presence', { token: ana.token });
  assert.equal(list.status, 200);
  const entry = (id) => list.body.items.find((p) => p.user_id === id);
  assert.equal(entry(ben.userId).status, 'online');
  assert.equal(entry(ana.userId).status, 'online');

  // Typing in the organisation room reaches Ana, not Ben himself; a burst becomes one relay.
  const room = `org:${ana.orgId}`;
  let benSawOwnTyping = false;
  b.on('typing', () => (benSawOwnTyping = true));
  const typed = [];
  a.on('typing', (t) => typed.push(t));
  for (let i = 0; i < 50; i++) b.emit('typing', { room });
  await new Promise((r) => setTimeout(r, 800));
  assert.deepEqual(typed, [{ room, user_id: ben.userId }]);
  assert.equal(benSawOwnTyping, false);

  // Joining is checked on the server: one's own org room yes, someone else's user room no.
  assert.deepEqual(await a.timeout(WAIT).emitWithAck('join', { room }), { ok: true, room });
  const denied = await a.timeout(WAIT).emitWithAck('join', { room: `user:${ben.userId}` });
  assert.equal(denied.ok, false);
  assert.equal(denied.error, 'forbidden');
  const invalid = await a.timeout(WAIT).emitWithAck('join', { room: 'nonsense' });
  assert.equal(invalid.error, 'invalid_room');

  // Away, then Ben leaves: offline with a last-seen time.
  const away = nextEvent(a, 'presence.changed', (e) => e.data.user_id === ben.userId && e.data.status === 'away');
  assert.deepEqual(await b.timeout(WAIT).emitWithAck('presence', { status: 'away' }), { ok: true });
  await away;
  const offline = nextEvent(a, 'presence.changed', (e) => e.data.user_id === ben.userId && e.data.status === 'offline');
  b.disconnect();
  const gone = await offline;
  assert.ok(gone.data.last_seen);
  const later = await api('GET', '/api/v1/presence', { token: ana.token });
  assert.equal(later.body.items.find((p) => p.user_id === ben.userId).status, 'offline');
});

test('another organisation hears nothing of Acme', async () => {
  const ana = await register('ana2@example.com', 'Acme Two');
  const eve = await register('eve@example.com', 'Evil');
  const e = connect({ token: eve.token });
  await connected(e);
  const heard = [];
  e.onAny((event, payload) => heard.push([event, payload]));
  const a = connect({ token: ana.token });
  await connected(a);
  for (let i = 0; i < 5; i++) a.emit('typing', { room: `org:${ana.orgId}` });
  // Even naming Evil's rooms gets Ana nothing.
  const denied = await a.timeout(WAIT).emitWithAck('join', { room: `org:${eve.orgId}` });
  assert.equal(denied.error, 'forbidden');
  a.emit('typing', { room: `org:${eve.orgId}` });
  await new Promise((r) => setTimeout(r, 800));
  assert.deepEqual(
    heard.filter(([, p]) => JSON.stringify(p).includes(ana.userId)),
    [],
    'events about Acme reached Evil',
  );
});
