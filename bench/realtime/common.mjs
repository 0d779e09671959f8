/**
 * Shared helpers of the realtime benchmarks: starting `wamage serve` and the reference server,
 * the REST calls, /proc and /metrics readings, percentiles, machine info, and the client
 * worker processes (clients.mjs) that hold the sockets.
 */
import { fork, spawn } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

export const here = dirname(fileURLToPath(import.meta.url));
export const benchDir = resolve(here, '..');

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export const nowMs = () => performance.timeOrigin + performance.now();
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `--name value` / `--flag` arguments into an object (camelCased keys). */
export function parseArgs(argv, defaults) {
  const out = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const key = a.slice(2).replace(/-([a-z0-9])/g, (_, c) => c.toUpperCase());
    if (!(key in defaults)) throw new Error(`unknown option ${a}`);
    if (typeof defaults[key] === 'boolean') {
      out[key] = true;
    } else {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      out[key] = typeof defaults[key] === 'number' ? Number(v) : v;
    }
  }
  return out;
}

export function log(...args) {
  const t = new Date().toISOString().slice(11, 19);
  console.error(`[${t}]`, ...args);
}

/** The release `wamage-bench` (for `ws-floor`): beside the wamage binary, or $WAMAGE_FLOOR_BIN. */
export function floorBin() {
  const candidates = [
    process.env.WAMAGE_FLOOR_BIN,
    join(dirname(wamageBin()), 'wamage-bench'),
    process.env.CARGO_TARGET_DIR && join(process.env.CARGO_TARGET_DIR, 'release/wamage-bench'),
  ].filter(Boolean);
  const bin = candidates.find((p) => existsSync(p));
  if (!bin) throw new Error(`release wamage-bench binary not found (tried ${candidates.join(', ')})`);
  return bin;
}

export function wamageBin() {
  const candidates = [
    process.env.WAMAGE_BENCH_BIN,
    process.env.CARGO_TARGET_DIR && join(process.env.CARGO_TARGET_DIR, 'release/wamage'),
    '/root/.cache/wamage/target/release/wamage',
    resolve(benchDir, '../target/release/wamage'),
  ].filter(Boolean);
  const bin = candidates.find((p) => existsSync(p));
  if (!bin) throw new Error(`release wamage binary not found (tried ${candidates.join(', ')})`);
  return bin;
}

/** Starts a release `wamage serve` on 127.0.0.1 (OS-chosen port) with a fresh data dir (SQLite). */
export async function startWamage({ bin = wamageBin(), logLevel = 'warn', dataDir = null } = {}) {
  const ownDir = !dataDir;
  dataDir ??= mkdtempSync(join(os.tmpdir(), 'wamage-bench-rt-'));
  // The server refuses WAMAGE_* variables it does not know.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WAMAGE_')));
  env.WAMAGE_LOG_LEVEL = logLevel;
  delete env.RUST_LOG;
  const proc = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (c) => {
    stderr += c;
    if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
  });
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error('wamage did not start within 60 s')), 60_000);
    let out = '';
    proc.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(/Wamage is running at (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1]);
      }
    });
    proc.on('exit', (code) => reject(new Error(`wamage exited early with ${code}: ${stderr.slice(-2000)}`)));
  });
  /** Stops the server; removes the data dir unless `keepData` (or it was given by the caller). */
  const stop = async ({ keepData = false } = {}) => {
    if (proc.exitCode === null) {
      proc.kill('SIGTERM');
      const done = new Promise((r) => proc.once('exit', r));
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await done;
      clearTimeout(t);
    }
    if (ownDir && !keepData) rmSync(dataDir, { recursive: true, force: true });
  };
  return { kind: 'wamage', proc, pid: proc.pid, url, dataDir, bin, stop, stderr: () => stderr };
}

/**
 * Starts the Node socket.io reference server (reference-server.mjs), or with `floor` the
 * floor server (`wamage-bench ws-floor`); both print `listening at URL`.
 */
export async function startReference({ floor = false } = {}) {
  const proc = floor
    ? spawn(floorBin(), ['ws-floor'], { stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(process.execPath, [join(here, 'reference-server.mjs')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`${floor ? 'floor' : 'reference'} server did not start within 30 s`)), 30_000);
    let out = '';
    proc.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(/listening at (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolveUrl(m[1]);
      }
    });
    proc.on('exit', (code) => reject(new Error(`${floor ? 'floor' : 'reference'} server exited early with ${code}`)));
  });
  const stop = async () => {
    if (proc.exitCode === null) {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.once('exit', r));
    }
  };
  return { kind: floor ? 'floor' : 'reference', proc, pid: proc.pid, url, stop };
}

/** One HTTP request from a given loopback source address (node:http: fetch cannot bind). */
function requestFrom(url, { method, headers, body, localAddress }) {
  return new Promise((resolveRes, reject) => {
    const req = httpRequest(url, { method, headers, localAddress, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolveRes({ status: res.statusCode, text: async () => text }));
    });
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

/**
 * A JSON API call. `localAddress` (127.x.y.z) sends it from that loopback address: the identity
 * endpoints limit attempts per client IP (100 per 15 min), so bulk set-up spreads them.
 */
export async function api(base, method, path, { token, body, expect, localAddress } = {}) {
  const init = {
    method,
    headers: {
      ...(body ? { 'content-type': 'application/json' } : {}),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  };
  const res = localAddress ? await requestFrom(base + path, { ...init, localAddress }) : await fetch(base + path, init);
  const text = await res.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = text;
  }
  if (expect && !expect.includes(res.status)) {
    throw new Error(`${method} ${path} → ${res.status}: ${typeof text === 'string' ? text.slice(0, 500) : ''}`);
  }
  return { status: res.status, body: parsed };
}

/** Runs `fn(i)` for i in 0..n with at most `limit` in flight. */
export async function pool(n, limit, fn) {
  const results = new Array(n);
  let next = 0;
  async function lane() {
    while (next < n) {
      const i = next++;
      results[i] = await fn(i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, n) }, lane));
  return results;
}

export function rssKb(pid) {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+) kB/);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Samples RSS `n` times `everyMs` apart and returns the samples and their maximum. */
export async function sampleRss(pid, n = 5, everyMs = 1000) {
  const samples = [];
  for (let i = 0; i < n; i++) {
    if (i) await sleep(everyMs);
    samples.push(rssKb(pid));
  }
  return { samples_kb: samples, max_kb: Math.max(...samples), last_kb: samples[samples.length - 1] };
}

/**
 * Where a process's memory is: /proc/PID/smaps_rollup totals, and the anonymous mappings
 * grouped by size (many same-sized mappings = one allocation per connection above the
 * allocator's mmap threshold).
 */
export function memoryMap(pid) {
  try {
    const rollup = {};
    for (const line of readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').split('\n')) {
      const m = line.match(/^(Rss|Pss|Anonymous|Private_Dirty|Swap):\s+(\d+) kB/);
      if (m) rollup[m[1].toLowerCase() + '_kb'] = Number(m[2]);
    }
    const bySize = new Map();
    let mappings = 0;
    for (const line of readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
      const m = line.match(/^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ 0\s*$/);
      if (!m) continue;
      mappings++;
      const kb = Number((BigInt('0x' + m[2]) - BigInt('0x' + m[1])) / 1024n);
      bySize.set(kb, (bySize.get(kb) ?? 0) + 1);
    }
    const top = [...bySize.entries()].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([kb, n]) => ({ size_kb: kb, count: n }));
    return { ...rollup, anonymous_mappings: mappings, most_common_anonymous_mappings: top };
  } catch (e) {
    return { error: e.message };
  }
}

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (100 Hz)
  } catch {
    return null;
  }
}

export function loadavg() {
  return os.loadavg().map((x) => Math.round(x * 100) / 100);
}

export function machine() {
  const cpus = os.cpus();
  return {
    nproc: cpus.length,
    cpu: cpus[0]?.model,
    mem_gib: Math.round((os.totalmem() / 2 ** 30) * 100) / 100,
    kernel: os.release(),
    node: process.version,
    hostname: os.hostname(),
  };
}

export async function scrapeMetrics(base) {
  const res = await fetch(`${base}/metrics`);
  return res.ok ? res.text() : '';
}

/** A Prometheus histogram from the text format: cumulative buckets [[le, count]], sum, count. */
export function parseHistogram(text, name) {
  const buckets = [];
  let sum = 0;
  let count = 0;
  for (const line of text.split('\n')) {
    let m = line.match(new RegExp(`^${name}_bucket\\{[^}]*le="([^"]+)"[^}]*\\}\\s+([\\d.e+-]+)`));
    if (m) {
      buckets.push([m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2])]);
      continue;
    }
    m = line.match(new RegExp(`^${name}_sum(?:\\{[^}]*\\})?\\s+([\\d.e+-]+)`));
    if (m) sum += Number(m[1]);
    m = line.match(new RegExp(`^${name}_count(?:\\{[^}]*\\})?\\s+([\\d.e+-]+)`));
    if (m) count += Number(m[1]);
  }
  buckets.sort((a, b) => a[0] - b[0]);
  return { buckets, sum, count };
}

export function metricValue(text, name) {
  const m = text.match(new RegExp(`^${name}(?:\\{[^}]*\\})?\\s+([\\d.e+-]+)`, 'm'));
  return m ? Number(m[1]) : null;
}

/** b − a for two readings of the same histogram. */
export function histDelta(a, b) {
  const before = new Map(a.buckets.map(([le, c]) => [le, c]));
  return {
    buckets: b.buckets.map(([le, c]) => [le, c - (before.get(le) ?? 0)]),
    sum: b.sum - a.sum,
    count: b.count - a.count,
  };
}

/**
 * Summary of a histogram delta: per-bucket counts, mean, and quantiles as the upper bound of the
 * bucket they fall in (`le`, seconds → ms). Prometheus buckets cannot say more than that.
 */
export function histSummary(h) {
  const out = { count: h.count, mean_ms: h.count ? round((h.sum / h.count) * 1000) : null };
  // Cumulative counts per bucket upper bound in ms ("le").
  out.buckets_ms = h.buckets.map(([le, c]) => [le === Infinity ? '+Inf' : round(le * 1000), c]);
  for (const q of [0.5, 0.95, 0.99, 1]) {
    const need = q * h.count;
    const hit = h.buckets.find(([, c]) => c >= need && c > 0);
    const key = q === 1 ? 'max_le_ms' : `p${Math.round(q * 100)}_le_ms`;
    out[key] = h.count && hit ? (hit[0] === Infinity ? 'inf' : round(hit[0] * 1000)) : null;
  }
  return out;
}

export function round(x, digits = 3) {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Percentiles of a numeric array (sorted in place), nearest-rank. */
export function percentiles(values) {
  const n = values.length;
  if (!n) return { count: 0 };
  const a = Float64Array.from(values).sort();
  const at = (q) => a[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))];
  let sum = 0;
  for (const v of a) sum += v;
  return {
    count: n,
    min: round(a[0]),
    mean: round(sum / n),
    p50: round(at(0.5)),
    p90: round(at(0.9)),
    p95: round(at(0.95)),
    p99: round(at(0.99)),
    p999: round(at(0.999)),
    max: round(a[n - 1]),
  };
}

/**
 * Forks `workers` client processes (clients.mjs) that together open `sockets` sockets to `url`,
 * socket i authenticating with tokens[i % tokens.length] and binding to one of the loopback
 * source addresses 127.0.0.2… (so that many sockets and repeated runs never run out of
 * ephemeral ports). With `room`, every socket joins it (emitWithAck) and records the latency
 * of `chat.message.created` events. Resolves when every socket is connected (and joined).
 */
export async function startClients({ url, tokens, sockets, workers = 2, room = null, concurrency = 200, sourceAddrs = 8, client = 'official' }) {
  const procs = [];
  const per = Math.ceil(sockets / workers);
  const t0 = nowMs();
  const ready = [];
  for (let w = 0; w < workers; w++) {
    const from = w * per;
    const count = Math.max(0, Math.min(per, sockets - from));
    if (!count) break;
    const child = fork(join(here, 'clients.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    procs.push(child);
    const msgs = [];
    const waiters = [];
    child.on('message', (m) => {
      const i = waiters.findIndex((wt) => wt.type === m.type);
      if (i >= 0) waiters.splice(i, 1)[0].resolve(m);
      else msgs.push(m);
    });
    child.next = (type, timeoutMs = 600_000) => {
      const i = msgs.findIndex((m) => m.type === type);
      if (i >= 0) return Promise.resolve(msgs.splice(i, 1)[0]);
      return new Promise((resolveMsg, reject) => {
        const t = setTimeout(() => reject(new Error(`client worker: no ${type} within ${timeoutMs} ms`)), timeoutMs);
        waiters.push({ type, resolve: (m) => { clearTimeout(t); resolveMsg(m); } });
        child.once('exit', (code) => reject(new Error(`client worker exited with ${code} while waiting for ${type}`)));
      });
    };
    child.send({
      type: 'start',
      url,
      tokens,
      from,
      count,
      room,
      concurrency,
      client,
      addrs: Array.from({ length: sourceAddrs }, (_, k) => `127.0.0.${2 + ((w * sourceAddrs + k) % 250)}`),
    });
    ready.push(child.next('ready'));
  }
  const reports = await Promise.all(ready);
  const connectSeconds = (nowMs() - t0) / 1000;
  const failed = reports.reduce((s, r) => s + r.failed, 0);
  const connected = reports.reduce((s, r) => s + r.connected, 0);
  const errors = reports.flatMap((r) => r.errors).slice(0, 10);
  const clientsRssKb = () => procs.reduce((s, p) => s + (rssKb(p.pid) ?? 0), 0);
  return {
    procs,
    connected,
    failed,
    errors,
    connectSeconds,
    clientsRssKb,
    /** Resets the workers' latency records (after the warm-up). */
    async reset() {
      for (const p of procs) p.send({ type: 'reset' });
      await Promise.all(procs.map((p) => p.next('reset-done')));
    },
    /** Everything the workers recorded since the last reset. */
    async collect() {
      for (const p of procs) p.send({ type: 'collect' });
      return Promise.all(procs.map((p) => p.next('results')));
    },
    async close() {
      for (const p of procs) if (p.connected) p.send({ type: 'close' });
      await Promise.all(
        procs.map(
          (p) =>
            new Promise((r) => {
              if (p.exitCode !== null) return r();
              const t = setTimeout(() => p.kill('SIGKILL'), 20_000);
              p.once('exit', () => {
                clearTimeout(t);
                r();
              });
            }),
        ),
      );
    },
  };
}

export function writeResult(name, data) {
  const dir = join(benchDir, 'results');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(data, null, 2) + '\n');
  log(`wrote ${path}`);
  return path;
}

export function gitRev() {
  try {
    const head = readFileSync(resolve(benchDir, '../.git/HEAD'), 'utf8').trim();
    if (!head.startsWith('ref: ')) return head.slice(0, 12);
    const ref = head.slice(5);
    const p = resolve(benchDir, '../.git', ref);
    if (existsSync(p)) return readFileSync(p, 'utf8').trim().slice(0, 12);
    const packed = readFileSync(resolve(benchDir, '../.git/packed-refs'), 'utf8');
    const m = packed.match(new RegExp(`^([0-9a-f]{40}) ${ref}$`, 'm'));
    return m ? m[1].slice(0, 12) : null;
  } catch {
    return null;
  }
}
