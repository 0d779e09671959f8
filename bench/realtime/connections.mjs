/**
 * Connections benchmark: N authenticated idle Socket.IO connections against a release
 * `wamage serve` (fresh data dir, SQLite, embedded defaults) and the server's memory per
 * connection.
 *
 *   node bench/realtime/connections.mjs [--sockets 20000] [--users 4] [--workers 2]
 *       [--server wamage|reference] [--settle 10] [--rounds 2]
 *       [--out bench/results/realtime-connections.json]
 *
 * Steps: start a set-up server; register an owner, invite `--users`−1 members (as admins: only
 * admins and owners may create API keys) and give every user an API key (`wam_…`: no expiry,
 * and API-key sockets are programs, so connecting them publishes no presence changes); stop it
 * and start the measured server on the same data dir (the argon2 hashing of the set-up leaves
 * freed heap in a process, which sockets would then reuse and hide); read its RSS 5 s after
 * start (the baseline); open `--sockets` sockets (websocket transport, official
 * socket.io-client, spread over the users' keys and over loopback source addresses 127.0.0.2…)
 * from `--workers` client processes — at most the open-files limit minus 200, since the server
 * needs one descriptor per socket; wait `--settle` seconds; sample the RSS for 5 s; read the
 * server's `wamage_realtime_connected_sockets`; close everything. Then (`--rounds 2`, the
 * default) connect and close the same number again on the same process (rounds − 1 times), to tell memory kept by
 * the allocator (reused: RSS stays flat) from a leak (RSS grows again).
 * RSS per connection = (RSS with N sockets − RSS before sockets) / N, from round 1.
 * Run it through bench/realtime.sh, which raises `ulimit -n` as far as the hard limit allows.
 */
import { rmSync } from 'node:fs';

import {
  api, gitRev, loadavg, log, machine, memoryMap, metricValue, parseArgs, pool, round, rssKb, sampleRss,
  scrapeMetrics, sleep, startClients, startReference, startWamage, writeResult,
} from './common.mjs';

const opts = parseArgs(process.argv.slice(2), {
  sockets: 20000,
  users: 4,
  workers: 2,
  server: 'wamage',
  settle: 10,
  rounds: 2,
  concurrency: 200,
  out: '',
});
const PASSWORD = 'benchmark passphrase';

async function wamageKeys(base, users) {
  const owner = await api(base, 'POST', '/api/v1/auth/register', {
    body: { email: 'owner@bench.example', password: PASSWORD, name: 'Owner', organization: 'Bench' },
    expect: [201],
  });
  const tokens = [owner.body.access_token];
  for (let i = 1; i < users; i++) {
    const inv = await api(base, 'POST', '/api/v1/invitations', {
      token: tokens[0],
      body: { email: `user${i}@bench.example`, role: 'admin' },
      expect: [201],
    });
    const accepted = await api(base, 'POST', `/api/v1/auth/invitations/${inv.body.invite_url.split('/').pop()}/accept`, {
      body: { name: `User ${i}`, password: PASSWORD },
      expect: [200],
    });
    tokens.push(accepted.body.access_token);
  }
  return pool(tokens.length, 4, async (i) => {
    const key = await api(base, 'POST', '/api/v1/api-keys', {
      token: tokens[i],
      body: { name: `bench sockets ${i}` },
      expect: [201],
    });
    return key.body.key;
  });
}

// The server holds one file descriptor per socket: it cannot hold more than its limit allows.
const fdLimit = Number(process.env.BENCH_NOFILE ?? 0) || null;
const requested = opts.sockets;
if (fdLimit && opts.sockets > fdLimit - 200) {
  opts.sockets = fdLimit - 200;
  log(`the open-files limit is ${fdLimit} (hard): measuring ${opts.sockets} sockets instead of ${requested}`);
}
const load0 = loadavg();
const started = new Date();
log(`connections: ${opts.sockets} sockets, server ${opts.server}, load ${load0.join(' ')}`);
let server;
let setupDir = null;
let keys;
if (opts.server === 'reference') {
  server = await startReference();
  keys = Array.from({ length: opts.users }, (_, i) => `ref_${i}`);
} else {
  // Users and keys are made by a first server process (argon2 hashing leaves tens of MB of
  // freed heap in the process, which sockets would then reuse and hide); the measured process
  // is a second one on the same data dir that has done nothing but start.
  const setup = await startWamage();
  setupDir = setup.dataDir;
  try {
    keys = await wamageKeys(setup.url, opts.users);
  } finally {
    await setup.stop({ keepData: true });
  }
  server = await startWamage({ dataDir: setupDir });
}
let clients;
try {
  await sleep(5000);
  const idleAfterStart = rssKb(server.pid);
  const before = await sampleRss(server.pid, 3, 1000);
  const memoryMapBefore = memoryMap(server.pid);
  log(`RSS idle ${idleAfterStart} kB after start, ${before.last_kb} kB before sockets; connecting…`);

  clients = await startClients({
    url: server.url,
    tokens: keys,
    sockets: opts.sockets,
    workers: opts.workers,
    concurrency: opts.concurrency,
  });
  log(`connected ${clients.connected}, failed ${clients.failed} in ${clients.connectSeconds.toFixed(1)} s`, clients.errors);
  await sleep(opts.settle * 1000);
  const withSockets = await sampleRss(server.pid, 5, 1000);
  const memBefore = memoryMapBefore;
  const memWith = memoryMap(server.pid);
  const metrics = opts.server === 'wamage' ? await scrapeMetrics(server.url) : '';
  const gauge = metricValue(metrics, 'wamage_realtime_connected_sockets');
  const clientsRss = clients.clientsRssKb();
  const { connected, failed, errors, connectSeconds } = clients;
  await clients.close();
  clients = null;
  await sleep(5000);
  const afterClose = rssKb(server.pid);
  const gaugeAfterClose =
    opts.server === 'wamage' ? metricValue(await scrapeMetrics(server.url), 'wamage_realtime_connected_sockets') : null;
  // Rounds 2…: the same again on the same process. If memory was retained by the allocator it is
  // reused (RSS stays flat); if sockets leaked it grows by as much again.
  const laterRounds = [];
  for (let r = 2; r <= opts.rounds; r++) {
    log(`round ${r}: reconnecting on the same server process…`);
    clients = await startClients({
      url: server.url,
      tokens: keys,
      sockets: opts.sockets,
      workers: opts.workers,
      concurrency: opts.concurrency,
    });
    await sleep(opts.settle * 1000);
    const again = await sampleRss(server.pid, 3, 1000);
    const c2 = clients.connected;
    await clients.close();
    clients = null;
    await sleep(5000);
    const row = { round: r, sockets_connected: c2, rss_with_sockets_max_kb: again.max_kb, rss_after_close_5s_kb: rssKb(server.pid) };
    laterRounds.push(row);
    log(`round ${r}: ${c2} sockets, RSS ${again.max_kb} kB, after close ${row.rss_after_close_5s_kb} kB`);
  }
  const n = opts.sockets;
  const perConnKb = (withSockets.max_kb - before.last_kb) / connected;
  const result = {
    benchmark: 'realtime-connections',
    server: opts.server,
    date: started.toISOString(),
    git_rev: gitRev(),
    binary: server.bin ?? null,
    machine: machine(),
    load_avg_start: load0,
    load_avg_end: loadavg(),
    sockets_requested: requested,
    sockets_opened: n,
    open_files_limit: fdLimit,
    sockets_connected: connected,
    sockets_failed: failed,
    connect_errors: errors,
    users: opts.users,
    client_workers: opts.workers,
    transport: 'websocket',
    connect: { seconds: round(connectSeconds, 2), per_sec: Math.round(connected / connectSeconds) },
    rss_kb: {
      idle_5s_after_start: idleAfterStart,
      before_sockets: before.last_kb,
      with_sockets_samples: withSockets.samples_kb,
      with_sockets_max: withSockets.max_kb,
      after_close_5s: afterClose,
    },
    rss_per_connection_kb: round(perConnKb, 2),
    rss_per_connection_target_kb: 30,
    memory_before_sockets: memBefore,
    memory_with_sockets: memWith,
    server_connected_sockets_gauge: gauge,
    server_connected_sockets_gauge_after_close: gaugeAfterClose,
    later_rounds: laterRounds,
    clients_rss_kb_total: clientsRss,
  };
  writeResult(opts.out || `realtime-connections${opts.server === 'reference' ? '-reference' : ''}.json`, result);
  console.log(JSON.stringify(result, null, 2));
} finally {
  if (clients) await clients.close();
  await server.stop();
  if (setupDir) rmSync(setupDir, { recursive: true, force: true });
}
