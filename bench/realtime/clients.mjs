/**
 * A client worker process (forked by common.mjs `startClients`): opens `count` sockets with the
 * official socket.io-client (websocket transport, no reconnection), optionally joins each to a
 * room with an ack, and records the end-to-end latency of every `chat.message.created` it
 * receives: receive time − the send time the sender wrote into the message text
 * (`bench seq=<n> t=<ms since epoch, fractional>`). Controlled over IPC:
 *   start → ready {connected, failed, errors}; reset → reset-done; collect → results; close → exit.
 *
 * `client: 'raw'` (a diagnostic, not the official client): each socket is a bare `ws` websocket
 * speaking Engine.IO 4 / Socket.IO 5 by hand — open, `40{auth}` connect, `420["join",…]` with
 * ack, pong to pings — and a message frame is only matched with a regular expression, never
 * JSON-parsed. It shows how much of the end-to-end time is the official client's own parsing.
 */
import { performance } from 'node:perf_hooks';

import { io } from 'socket.io-client';
import WebSocket from 'ws';

const nowMs = () => performance.timeOrigin + performance.now();
const EVENT = 'chat.message.created';
const TEXT_RE = /seq=(\d+) t=([\d.]+)/;

const sockets = [];
let latencies = new Float64Array(1 << 16);
let n = 0;
/** seq → [deliveries, max latency, min latency]. */
let perSeq = new Map();
let unparsed = 0;

function record(payload) {
  const text = payload?.data?.message?.text;
  const m = typeof text === 'string' ? TEXT_RE.exec(text) : null;
  if (!m) {
    unparsed++;
    return;
  }
  store(nowMs() - Number(m[2]), Number(m[1]));
}

function store(lat, seq) {
  if (n === latencies.length) {
    const bigger = new Float64Array(latencies.length * 2);
    bigger.set(latencies);
    latencies = bigger;
  }
  latencies[n++] = lat;
  const s = perSeq.get(seq);
  if (s) {
    s[0]++;
    if (lat > s[1]) s[1] = lat;
    if (lat < s[2]) s[2] = lat;
  } else perSeq.set(seq, [1, lat, lat]);
}

/** The same as connectOne with a bare websocket (see the header). */
function connectRaw(cfg, i) {
  const token = cfg.tokens[i % cfg.tokens.length];
  const localAddress = cfg.addrs[i % cfg.addrs.length];
  const url = cfg.url.replace(/^http/, 'ws') + '/socket.io/?EIO=4&transport=websocket';
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { localAddress, perMessageDeflate: false });
    let state = 'open';
    const timer = setTimeout(() => resolve({ ok: false, error: 'raw: timeout' }), 60_000);
    const done = (r) => {
      clearTimeout(timer);
      resolve(r);
    };
    sockets.push({ disconnect: () => ws.close(), on: (ev, fn) => ev === 'disconnect' && ws.on('close', fn) });
    ws.on('error', (e) => done({ ok: false, error: `raw: ${e.message}` }));
    ws.on('message', (buf) => {
      const frame = buf.toString();
      if (frame === '2') return ws.send('3');
      if (state === 'joined') {
        if (frame.startsWith('42["chat.message.created"')) recordText(frame);
        return;
      }
      if (state === 'open' && frame[0] === '0') {
        state = 'connecting';
        ws.send('40' + JSON.stringify({ token }));
      } else if (state === 'connecting' && frame.startsWith('40')) {
        if (!cfg.room) {
          state = 'joined';
          return done({ ok: true });
        }
        state = 'joining';
        ws.send('420' + JSON.stringify(['join', { room: cfg.room }]));
      } else if (state === 'connecting' && frame.startsWith('44')) {
        done({ ok: false, error: `connect_error: ${frame.slice(2)}` });
      } else if (state === 'joining' && frame.startsWith('430')) {
        state = 'joined';
        const ok = frame.includes('"ok":true');
        done(ok ? { ok: true } : { ok: false, error: `join refused: ${frame}` });
      }
    });
  });
}

function recordText(text) {
  const m = TEXT_RE.exec(text);
  if (!m) {
    unparsed++;
    return;
  }
  store(nowMs() - Number(m[2]), Number(m[1]));
}

function connectOne(cfg, i) {
  if (cfg.client === 'raw') return connectRaw(cfg, i);
  const token = cfg.tokens[i % cfg.tokens.length];
  const localAddress = cfg.addrs[i % cfg.addrs.length];
  return new Promise((resolve) => {
    const socket = io(cfg.url, {
      auth: { token },
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      timeout: 60_000,
      localAddress,
    });
    sockets.push(socket);
    socket.once('connect_error', (err) => resolve({ ok: false, error: `connect_error: ${err.message}` }));
    socket.once('connect', async () => {
      if (!cfg.room) return resolve({ ok: true });
      socket.on(EVENT, record);
      try {
        const ack = await socket.timeout(60_000).emitWithAck('join', { room: cfg.room });
        resolve(ack?.ok ? { ok: true } : { ok: false, error: `join refused: ${JSON.stringify(ack)}` });
      } catch (e) {
        resolve({ ok: false, error: `join: ${e.message}` });
      }
    });
  });
}

async function start(cfg) {
  let next = 0;
  let connected = 0;
  let failed = 0;
  const errors = [];
  async function lane() {
    while (next < cfg.count) {
      const i = cfg.from + next++;
      const r = await connectOne(cfg, i);
      if (r.ok) connected++;
      else {
        failed++;
        if (errors.length < 5) errors.push(r.error);
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(cfg.concurrency, cfg.count) }, lane));
  let disconnects = 0;
  for (const s of sockets) s.on('disconnect', () => disconnects++);
  process.send({ type: 'ready', connected, failed, errors });
  process.on('message', async (m) => {
    if (m.type === 'reset') {
      n = 0;
      perSeq = new Map();
      unparsed = 0;
      process.send({ type: 'reset-done' });
    } else if (m.type === 'collect') {
      process.send({
        type: 'results',
        latencies: Array.from(latencies.subarray(0, n)),
        perSeq: [...perSeq.entries()],
        unparsed,
        disconnects,
        sockets: sockets.length,
      });
    } else if (m.type === 'close') {
      for (const s of sockets) s.disconnect();
      setTimeout(() => process.exit(0), 500);
    }
  });
}

process.once('message', (m) => {
  if (m.type === 'start') start(m);
});
process.on('disconnect', () => process.exit(0));
