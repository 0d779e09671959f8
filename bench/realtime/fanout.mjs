/**
 * Fan-out benchmark: chat messages sent over REST, delivered by the Socket.IO gateway to every
 * socket joined to the channel's room, measured end to end at every socket — for Wamage and,
 * in the same run, for the Node `socket.io` v4 reference server (reference-server.mjs).
 *
 *   node bench/realtime/fanout.mjs [--servers wamage,reference[,floor]] [--scenarios 1k,10k]
 *       [--users 9999] [--seconds-1k 30] [--seconds-10k 60] [--warmup 5] [--workers 2]
 *       [--client official|raw|official,raw] [--out bench/results/realtime-fanout.json]
 *
 * Scenarios: `1k` = a channel room with 1,000 sockets, 10 msg/s for 30 s (300 messages);
 * `10k` = 10,000 sockets, 1 msg/s for 60 s (60 messages). Targets: e2e p99 ≤ 25 ms and ≤ 150 ms.
 *
 * Wamage set-up (one server, fresh data dir, SQLite, embedded defaults, used by both scenarios):
 * register an owner; invite `--users` members as admins (an admin may create an API key; API-key
 * sockets are programs and publish no presence, so connecting thousands of them does not flood
 * the organisation room) and give each one an API key (`wam_…`, no expiry) — the acceptances come
 * from loopback addresses 127.10.x.y, 90 per address, under the per-IP limit; create a private
 * channel per scenario and add its members over REST (`POST /api/v1/chat/channels/{id}/members`):
 * the owner (its creator, who also sends) + 999 members for `1k`, + min(`--users`, 9,999) for
 * `10k`. Socket i authenticates with the key of member i mod members and joins `chat:{channel}`
 * (`emitWithAck('join')`, which the chat room policy allows because its user is a member): one
 * socket per member; with `--users` below 9,999, `10k` has several sockets per member (reported
 * as `sockets_per_user`). The reference server gets the same number of distinct tokens.
 *
 * Each scenario and server: fork `--workers` client processes holding the sockets (official
 * socket.io-client, websocket transport); the sender (this process) posts `--warmup` unmeasured
 * messages, then the measured ones at a fixed rate (open loop: a slow response does not delay
 * the next send), as the owner, with `text = "bench seq=<n> t=<send time, ms since epoch>"`.
 * Every `chat.message.created` received is timed against that send time (e2e = REST request,
 * the server's own work, fan-out, loopback, client parsing). The server-side histogram
 * (`wamage_realtime_fanout_seconds`: event time at publication → frame handed to the sockets;
 * the reference's `reference_fanout_seconds`: request arrival → emit returned) is scraped from
 * /metrics before and after the measured window. The servers and the clients share the
 * machine's cores. `--client raw` (or `official,raw`: both, one after the other, same server) swaps the official client for a bare websocket speaking the
 * protocol by hand and matching frames with a regular expression (clients.mjs): a diagnostic of
 * how much of the e2e time is the clients' own parsing, not a replacement for the official runs.
 * `floor` (`wamage-bench ws-floor`, bench/src/ws_floor.rs) goes through the same scenarios as a
 * third server: no database, each frame written to the room's sockets with one send apiece —
 * what the machine and the clients allow any server.
 */
import { randomUUID } from 'node:crypto';

import {
  api, cpuSeconds, gitRev, histDelta, histSummary, loadavg, log, machine, nowMs, parseArgs,
  parseHistogram, percentiles, pool, round, rssKb, scrapeMetrics, sleep, startClients,
  startReference, startWamage, writeResult,
} from './common.mjs';

const opts = parseArgs(process.argv.slice(2), {
  servers: 'wamage,reference',
  scenarios: '1k,10k',
  users: 9999,
  seconds1k: 30,
  seconds10k: 60,
  warmup: 5,
  workers: 2,
  drain: 5,
  setupConcurrency: 6,
  client: 'official',
  out: '',
});
const PASSWORD = 'benchmark passphrase';
const SCENARIOS = {
  '1k': { sockets: 1000, rate: 10, seconds: opts.seconds1k, targetP99Ms: 25 },
  '10k': { sockets: 10000, rate: 1, seconds: opts.seconds10k, targetP99Ms: 150 },
};
const scenarios = opts.scenarios.split(',').map((s) => {
  if (!SCENARIOS[s]) throw new Error(`unknown scenario ${s}`);
  return [s, SCENARIOS[s]];
});
const servers = opts.servers.split(',');
const started = new Date();
const load0 = loadavg();

/**
 * Accepting an invitation is limited to 100 per client IP in 15 minutes: member i accepts from
 * loopback address 127.10.a.b, 90 members per address.
 */
function setupAddress(i) {
  const k = Math.floor(i / 90);
  return `127.10.${Math.floor(k / 250)}.${1 + (k % 250)}`;
}

/** Owner + `users` members with API keys, one private channel per scenario. */
async function setupWamage(base) {
  const t0 = nowMs();
  const owner = await api(base, 'POST', '/api/v1/auth/register', {
    body: { email: 'owner@bench.example', password: PASSWORD, name: 'Owner', organization: 'Bench' },
    expect: [201],
  });
  const ownerToken = owner.body.access_token;
  const ownerKey = (
    await api(base, 'POST', '/api/v1/api-keys', { token: ownerToken, body: { name: 'bench sender' }, expect: [201] })
  ).body.key;
  // Fail early when the chat API is not there.
  const probe = await api(base, 'GET', '/api/v1/chat/channels', { token: ownerKey });
  if (probe.status === 404 || probe.status === 405) {
    throw new Error(`the chat API is not in this binary (GET /api/v1/chat/channels → ${probe.status})`);
  }
  let done = 0;
  const members = await pool(opts.users, opts.setupConcurrency, async (i) => {
    const inv = await api(base, 'POST', '/api/v1/invitations', {
      token: ownerToken,
      body: { email: `member${i}@bench.example`, role: 'admin' },
      expect: [201],
    });
    const acc = await api(base, 'POST', `/api/v1/auth/invitations/${inv.body.invite_url.split('/').pop()}/accept`, {
      body: { name: `Member ${i}`, password: PASSWORD },
      expect: [200],
      localAddress: setupAddress(i),
    });
    const key = await api(base, 'POST', '/api/v1/api-keys', {
      token: acc.body.access_token,
      body: { name: 'bench sockets' },
      expect: [201],
    });
    if (++done % 500 === 0) log(`  ${done}/${opts.users} members`);
    return { id: acc.body.user.id, key: key.body.key };
  });
  const usersSeconds = (nowMs() - t0) / 1000;
  log(`${opts.users} members with API keys in ${usersSeconds.toFixed(1)} s`);
  const channels = {};
  for (const [name, sc] of scenarios) {
    // The owner (creator, and the sender) is a member too: sockets − 1 more make the channel.
    const n = Math.min(sc.sockets - 1, members.length);
    const ch = await api(base, 'POST', '/api/v1/chat/channels', {
      token: ownerKey,
      body: { kind: 'private', name: `bench-${name}-${Date.now()}` },
      expect: [201],
    });
    const id = ch.body.id;
    let batch = 500;
    for (let from = 0; from < n; ) {
      const ids = members.slice(from, Math.min(n, from + batch)).map((m) => m.id);
      const res = await api(base, 'POST', `/api/v1/chat/channels/${id}/members`, {
        token: ownerKey,
        body: { user_ids: ids },
      });
      if (res.status >= 200 && res.status < 300) {
        from += ids.length;
      } else if (res.status === 422 && batch > 1) {
        batch = Math.max(1, Math.floor(batch / 4));
      } else {
        throw new Error(`adding members → ${res.status}: ${JSON.stringify(res.body).slice(0, 400)}`);
      }
    }
    const check = await api(base, 'GET', `/api/v1/chat/channels/${id}`, { token: ownerKey, expect: [200] });
    log(`channel ${name}: ${check.body.member_count} members (added in batches of ≤ ${batch})`);
    channels[name] = {
      id,
      // Socket i uses the key of member i mod count; the owner's own socket is member 0.
      keys: [ownerKey, ...members.slice(0, n).map((m) => m.key)],
      member_count: check.body.member_count,
    };
  }
  return { senderToken: ownerKey, channels, setup_seconds: round((nowMs() - t0) / 1000, 1), users_seconds: round(usersSeconds, 1) };
}

/** Posts `count` messages at `rate`/s (open loop); resolves with per-request outcomes. */
async function send(base, token, channelId, { count, rate, seqFrom }) {
  const t0 = nowMs();
  const pending = [];
  const rest = [];
  let errors = 0;
  const statuses = {};
  for (let k = 0; k < count; k++) {
    const due = t0 + (k * 1000) / rate;
    const wait = due - nowMs();
    if (wait > 0) await sleep(wait);
    const seq = seqFrom + k;
    const sentAt = nowMs();
    pending.push(
      fetch(`${base}/api/v1/chat/channels/${channelId}/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ text: `bench seq=${seq} t=${sentAt.toFixed(3)}` }),
      })
        .then(async (res) => {
          await res.arrayBuffer();
          statuses[res.status] = (statuses[res.status] ?? 0) + 1;
          if (res.status !== 201) errors++;
          rest.push(nowMs() - sentAt);
        })
        .catch(() => {
          errors++;
        }),
    );
  }
  await Promise.all(pending);
  return { seconds: (nowMs() - t0) / 1000, errors, statuses, rest };
}

async function runScenario(server, name, sc, ctx, client) {
  const isWamage = server.kind === 'wamage';
  const channelId = isWamage ? ctx.channels[name].id : randomUUID();
  const tokens = isWamage ? ctx.channels[name].keys : Array.from({ length: Math.min(sc.sockets, opts.users + 1) }, (_, i) => `ref_${i}`);
  const histName = `${isWamage ? 'wamage_realtime' : server.kind}_fanout_seconds`;
  const load = [loadavg()];
  log(`${server.kind} ${name}: connecting ${sc.sockets} ${client} sockets (${tokens.length} users)…`);
  const clients = await startClients({
    url: server.url,
    tokens,
    sockets: sc.sockets,
    workers: opts.workers,
    room: `chat:${channelId}`,
    client,
  });
  try {
    log(`  connected+joined ${clients.connected}, failed ${clients.failed} in ${clients.connectSeconds.toFixed(1)} s`, clients.errors);
    await sleep(2000);
    // Warm-up (not measured): connections, caches, JIT.
    await send(server.url, ctx.senderToken, channelId, { count: opts.warmup, rate: sc.rate, seqFrom: 1_000_000 });
    await sleep(2000);
    await clients.reset();
    const before = parseHistogram(await scrapeMetrics(server.url), histName);
    const cpu0 = cpuSeconds(server.pid);
    const clientCpu0 = clients.procs.reduce((s, p) => s + (cpuSeconds(p.pid) ?? 0), 0);
    const count = Math.round(sc.rate * sc.seconds);
    log(`  sending ${count} messages at ${sc.rate}/s…`);
    const rssSamples = [];
    const rssTimer = setInterval(() => rssSamples.push(rssKb(server.pid)), 1000);
    const sent = await send(server.url, ctx.senderToken, channelId, { count, rate: sc.rate, seqFrom: 0 });
    await sleep(opts.drain * 1000);
    clearInterval(rssTimer);
    const cpu1 = cpuSeconds(server.pid);
    const clientCpu1 = clients.procs.reduce((s, p) => s + (cpuSeconds(p.pid) ?? 0), 0);
    const after = parseHistogram(await scrapeMetrics(server.url), histName);
    load.push(loadavg());
    const results = await clients.collect();
    const all = results.flatMap((r) => r.latencies);
    const perSeq = new Map();
    for (const r of results) {
      for (const [seq, [c, max, min]] of r.perSeq) {
        const s = perSeq.get(seq);
        if (s) {
          s[0] += c;
          s[1] = Math.max(s[1], max);
          s[2] = Math.min(s[2], min);
        } else perSeq.set(seq, [c, max, min]);
      }
    }
    const expected = (count - sent.errors) * clients.connected;
    const e2e = percentiles(all);
    const out = {
      server: server.kind,
      scenario: name,
      client: client === 'raw' ? 'raw websocket (diagnostic)' : 'socket.io-client 4.8.4',
      sockets: sc.sockets,
      sockets_joined: clients.connected,
      sockets_failed: clients.failed,
      connect_errors: clients.errors,
      users: tokens.length,
      sockets_per_user: round(sc.sockets / tokens.length, 2),
      channel_members: isWamage ? ctx.channels[name].member_count : null,
      connect_and_join_seconds: round(clients.connectSeconds, 2),
      rate_per_sec: sc.rate,
      messages: count,
      send_seconds: round(sent.seconds, 2),
      send_errors: sent.errors,
      send_statuses: sent.statuses,
      rest_post_ms: percentiles(sent.rest),
      deliveries_expected: expected,
      deliveries_received: all.length,
      deliveries_missing: expected - all.length,
      unparsed_events: results.reduce((s, r) => s + r.unparsed, 0),
      client_disconnects: results.reduce((s, r) => s + r.disconnects, 0),
      e2e_ms: e2e,
      e2e_first_socket_per_message_ms: percentiles([...perSeq.values()].map((s) => s[2])),
      e2e_last_socket_per_message_ms: percentiles([...perSeq.values()].map((s) => s[1])),
      target_e2e_p99_ms: sc.targetP99Ms,
      meets_target: e2e.count > 0 && e2e.p99 <= sc.targetP99Ms && expected === all.length,
      server_fanout_histogram: { metric: histName, ...histSummary(histDelta(before, after)) },
      server_cpu_seconds: cpu0 === null ? null : round(cpu1 - cpu0, 2),
      clients_cpu_seconds: round(clientCpu1 - clientCpu0, 2),
      server_cpu_ms_per_message: cpu0 === null ? null : round(((cpu1 - cpu0) * 1000) / count, 2),
      clients_cpu_us_per_delivery: all.length ? round(((clientCpu1 - clientCpu0) * 1e6) / all.length, 1) : null,
      window_seconds: round(sent.seconds + opts.drain, 2),
      server_rss_kb_max: Math.max(...rssSamples.filter(Boolean)),
      clients_rss_kb: clients.clientsRssKb(),
      load_avg: load,
    };
    log(
      `  ${server.kind} ${name}: e2e p50 ${e2e.p50} p95 ${e2e.p95} p99 ${e2e.p99} max ${e2e.max} ms;` +
        ` received ${all.length}/${expected}; server fan-out p99 ≤ ${out.server_fanout_histogram.p99_le_ms} ms; load ${load[1].join(' ')}`,
    );
    return out;
  } finally {
    await clients.close();
    await sleep(3000);
  }
}

const runs = [];
const meta = {};
const live = {};
try {
  if (servers.includes('wamage')) {
    live.wamage = await startWamage();
    log(`wamage at ${live.wamage.url} (${live.wamage.bin}); setting up ${opts.users} members…`);
    live.wamage.ctx = await setupWamage(live.wamage.url);
    meta.wamage = {
      binary: live.wamage.bin,
      setup_seconds: live.wamage.ctx.setup_seconds,
      users_seconds: live.wamage.ctx.users_seconds,
      users: opts.users,
      rss_kb_after_setup: rssKb(live.wamage.pid),
    };
  }
  if (servers.includes('reference')) {
    live.reference = await startReference();
    live.reference.ctx = { senderToken: 'ref_sender' };
    meta.reference = { package: 'socket.io@4.8.4 (Node ' + process.version + ')' };
  }
  if (servers.includes('floor')) {
    live.floor = await startReference({ floor: true });
    live.floor.ctx = { senderToken: 'ref_sender' };
    meta.floor = { binary: 'wamage-bench ws-floor (no database, one send per socket, no per-socket task)' };
  }
  // Interleaved: for each scenario, each server in turn, so both see similar machine load.
  for (const client of opts.client.split(',')) {
    for (const [name, sc] of scenarios) {
      for (const s of servers) {
        runs.push(await runScenario(live[s], name, sc, live[s].ctx, client));
      }
    }
  }
} finally {
  for (const s of Object.values(live)) await s.stop();
}

const result = {
  benchmark: 'realtime-fanout',
  date: started.toISOString(),
  git_rev: gitRev(),
  machine: machine(),
  load_avg_start: load0,
  load_avg_end: loadavg(),
  options: opts,
  servers: meta,
  runs,
};
writeResult(opts.out || 'realtime-fanout.json', result);
for (const r of runs) {
  console.log(
    `${r.server.padEnd(9)} ${r.scenario.padEnd(4)} ${r.client.startsWith('raw') ? 'raw     ' : 'official'} sockets ${r.sockets_joined}/${r.sockets} e2e p50/p95/p99/max ` +
      `${r.e2e_ms.p50}/${r.e2e_ms.p95}/${r.e2e_ms.p99}/${r.e2e_ms.max} ms (target p99 ≤ ${r.target_e2e_p99_ms}: ` +
      `${r.meets_target ? 'met' : 'MISSED'}), missing ${r.deliveries_missing}, server fan-out p50/p99 ≤ ` +
      `${r.server_fanout_histogram.p50_le_ms}/${r.server_fanout_histogram.p99_le_ms} ms, REST p99 ${r.rest_post_ms.p99} ms`,
  );
}
