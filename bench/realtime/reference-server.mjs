/**
 * The peer reference: the Node `socket.io` v4 server put through the same scenarios as Wamage's
 * gateway. It accepts the same client shape — `io(url, { auth: { token } })` (tokens `ref_…`,
 * others refused with a connect error), `emitWithAck('join', { room })` answered
 * `{ ok: true, room }` — and has the one REST route the fan-out benchmark uses:
 * `POST /api/v1/chat/channels/{id}/messages {text}` → 201 with a message shaped like Wamage's
 * MessageOut, emitted as `chat.message.created` `{ id, type, time, data: { channel_id, message } }`
 * to the room `chat:{id}`. No database and no authorisation work: it is the floor a Node
 * socket.io deployment gives for the fan-out itself.
 *
 * `/metrics` renders `reference_fanout_seconds` (Prometheus histogram with Wamage's buckets):
 * from the request's arrival to `io.to(room).emit` returning — socket.io encodes the packet once
 * and writes it to every socket of the room synchronously inside that call.
 *
 *   node bench/realtime/reference-server.mjs [port]   → prints "listening at http://127.0.0.1:PORT"
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { performance } from 'node:perf_hooks';

import { Server } from 'socket.io';

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
const hist = { counts: new Array(BUCKETS.length + 1).fill(0), sum: 0, count: 0 };
function observe(seconds) {
  let i = BUCKETS.findIndex((le) => seconds <= le);
  if (i < 0) i = BUCKETS.length;
  hist.counts[i]++;
  hist.sum += seconds;
  hist.count++;
}
function renderMetrics() {
  const lines = ['# TYPE reference_fanout_seconds histogram'];
  let cum = 0;
  BUCKETS.forEach((le, i) => {
    cum += hist.counts[i];
    lines.push(`reference_fanout_seconds_bucket{le="${le}"} ${cum}`);
  });
  cum += hist.counts[BUCKETS.length];
  lines.push(`reference_fanout_seconds_bucket{le="+Inf"} ${cum}`);
  lines.push(`reference_fanout_seconds_sum ${hist.sum}`);
  lines.push(`reference_fanout_seconds_count ${hist.count}`);
  lines.push(`reference_connected_sockets ${io.engine.clientsCount}`);
  return lines.join('\n') + '\n';
}

const ORG = randomUUID();
const AUTHOR = { id: randomUUID(), name: 'Owner', avatar_url: null };

const http = createServer((req, res) => {
  const t0 = performance.now();
  if (req.method === 'GET' && req.url === '/metrics') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    return res.end(renderMetrics());
  }
  if (req.method === 'GET' && req.url === '/health') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end('{"status":"ok"}');
  }
  const m = req.method === 'POST' && req.url.match(/^\/api\/v1\/chat\/channels\/([0-9a-f-]{36})\/messages$/);
  if (!m) {
    res.writeHead(404, { 'content-type': 'application/json' });
    return res.end('{"code":"not_found"}');
  }
  const channelId = m[1];
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    let text;
    try {
      text = JSON.parse(body).text;
    } catch {
      res.writeHead(422, { 'content-type': 'application/json' });
      return res.end('{"code":"validation_failed"}');
    }
    const now = new Date().toISOString();
    const message = {
      id: randomUUID(),
      channel_id: channelId,
      author: AUTHOR,
      text,
      mentions: [],
      mentions_channel: false,
      thread_id: null,
      reply_count: 0,
      last_reply_at: null,
      quote: null,
      forwarded_from: null,
      attachments: [],
      reactions: [],
      pinned: false,
      edited_at: null,
      deleted: false,
      created_at: now,
      expires_at: null,
      read_by: [],
    };
    io.to(`chat:${channelId}`).emit('chat.message.created', {
      id: randomUUID(),
      type: 'chat.message.created',
      time: now,
      data: { channel_id: channelId, message },
    });
    observe((performance.now() - t0) / 1000);
    res.writeHead(201, { 'content-type': 'application/json' });
    res.end(JSON.stringify(message));
  });
});

const io = new Server(http, { serveClient: false, pingInterval: 25_000, pingTimeout: 20_000 });
io.use((socket, next) => {
  const token = socket.handshake.auth?.token;
  if (typeof token !== 'string' || !token.trim()) return next(new Error('missing token: connect with auth: { token }'));
  if (!/^ref_\w+$/.test(token)) return next(new Error('invalid or expired token'));
  socket.data.user = token;
  next();
});
io.on('connection', (socket) => {
  socket.join(`user:${socket.data.user}`);
  socket.join(`org:${ORG}`);
  socket.on('join', (arg, ack) => {
    const room = typeof arg === 'string' ? arg : arg?.room;
    const ok = typeof room === 'string' && /^chat:[0-9a-f-]{36}$/.test(room);
    if (ok) socket.join(room);
    if (typeof ack === 'function') ack(ok ? { ok: true, room } : { ok: false, error: 'invalid_room' });
  });
});

http.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  console.log(`listening at http://127.0.0.1:${http.address().port}`);
});
process.on('SIGTERM', () => {
  io.close();
  http.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
