//! A byte cache with per-entry TTL, prefix invalidation and a fixed-window counter.
//!
//! Two backends implement [`Cache`] and pass the same conformance suite (`tests/cache.rs`):
//! [`MemoryCache`] (moka, in-process, the embedded default) and [`RedisCache`] (shared by several
//! processes). [`connect_cache`] picks one from a URL.
//!
//! - **TTL.** Every `set` carries its own time to live; an expired entry is never returned, even
//!   before it is physically evicted. Setting a key again replaces both value and TTL.
//! - **Prefix invalidation.** Keys are built as `"<area>:<org>:<rest>"` so that everything cached
//!   for an area and organisation can be dropped at once with [`Cache::delete_prefix`]
//!   (e.g. `"contacts:{org}:"`). A key written *while* a prefix deletion runs may survive it;
//!   callers invalidate after their write commits, so this only loses a race with a newer value.
//! - **Fixed-window counter.** [`Cache::incr`] increments a counter and starts its window (the
//!   TTL) when the key is created; later increments do not extend the window. When the window
//!   ends the key disappears and the next increment starts again at 1. This is what rate limits
//!   use: `let (n, retry_after) = cache.incr("rl:login:{ip}", 60s)`; allow while `n <= limit`.
//!   The counter is stored as its decimal text, so `get` on it returns e.g. `b"3"` on both
//!   backends.
//! - **Sliding counter.** [`Cache::add`] adds a (possibly negative or zero) delta to a counter,
//!   creating it at 0, and restarts its TTL on every call: it lives while someone keeps touching
//!   it (`add(key, 0, ttl)` is a pure refresh). This is what counts live connections per user
//!   for presence: a process that crashes stops refreshing, and its count expires.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, anyhow, bail};
use moka::{
    Expiry,
    ops::compute::{CompResult, Op},
};
use redis::aio::ConnectionManager;

pub type CacheError = anyhow::Error;

#[async_trait::async_trait]
pub trait Cache: Send + Sync + fmt::Debug + 'static {
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
    async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) -> anyhow::Result<()>;
    async fn delete(&self, key: &str) -> anyhow::Result<()>;
    /// Removes every key starting with `prefix` (e.g. "contacts:{org}:"); returns how many (best effort count).
    async fn delete_prefix(&self, prefix: &str) -> anyhow::Result<u64>;
    /// Fixed-window counter: increments `key`, setting `ttl` when the key is created; returns the new value
    /// and the seconds left in the window. Used for rate limits, must be atomic (Redis: INCR + EXPIRE NX in a pipeline/MULTI or a Lua script).
    async fn incr(&self, key: &str, ttl: Duration) -> anyhow::Result<(i64, u64)>;
    /// Sliding counter: atomically adds `delta` (may be negative or 0) to the integer at `key`
    /// (a missing key counts as 0) and sets the key's TTL to `ttl` again; returns the new value.
    /// Fails, leaving the value unchanged, when the value is not an integer or would overflow.
    async fn add(&self, key: &str, delta: i64, ttl: Duration) -> anyhow::Result<i64>;
    async fn ping(&self) -> anyhow::Result<()>;
    /// `"memory"` or `"redis"`.
    fn backend(&self) -> &'static str;
}

pub type SharedCache = Arc<dyn Cache>;

/// Reads `key` and decodes it as JSON; `None` when the key is absent or expired.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    cache: &dyn Cache,
    key: &str,
) -> anyhow::Result<Option<T>> {
    match cache.get(key).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("failed to decode cached json at {key}")),
    }
}

/// Encodes `value` as JSON and stores it under `key` for `ttl`.
pub async fn set_json<T: serde::Serialize + ?Sized>(
    cache: &dyn Cache,
    key: &str,
    value: &T,
    ttl: Duration,
) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec(value).context("failed to encode json for the cache")?;
    cache.set(key, bytes, ttl).await
}

/// Seconds left until `remaining` runs out, rounded up so a live window never reports 0.
fn ceil_secs(remaining: Duration) -> u64 {
    let secs = remaining.as_secs();
    if remaining.subsec_nanos() > 0 {
        secs + 1
    } else {
        secs
    }
}

// ---------------------------------------------------------------------------------------------
// In-process backend
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct Entry {
    value: Arc<[u8]>,
    /// Absolute deadline; the moka `Expiry` below turns it into a per-entry TTL. Keeping the
    /// deadline in the value lets `incr` replace the value without moving the window.
    expires_at: Instant,
}

struct DeadlineExpiry;

impl Expiry<String, Entry> for DeadlineExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Entry,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(value.expires_at.saturating_duration_since(created_at))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.expires_at.saturating_duration_since(updated_at))
    }
}

/// The embedded cache: a bounded moka cache with per-entry TTL.
///
/// Prefix deletion walks the entries and removes the matching ones one by one, so a `get` right
/// after `delete_prefix` returns never sees a removed key (moka's lazy `invalidate_entries_if`
/// would give the same guarantee but no count). It is O(entries), fine for an in-process cache.
#[derive(Clone)]
pub struct MemoryCache {
    inner: moka::future::Cache<String, Entry>,
}

impl MemoryCache {
    /// A cache holding at most `max_entries` entries (least useful ones are evicted first).
    pub fn new(max_entries: u64) -> Self {
        let inner = moka::future::Cache::builder()
            .max_capacity(max_entries)
            .expire_after(DeadlineExpiry)
            .build();
        Self { inner }
    }
}

impl fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCache")
            .field("entries", &self.inner.entry_count())
            .finish()
    }
}

#[async_trait::async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.inner.get(key).await.map(|e| e.value.to_vec()))
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) -> anyhow::Result<()> {
        let entry = Entry {
            value: value.into(),
            expires_at: Instant::now() + ttl,
        };
        self.inner.insert(key.to_owned(), entry).await;
        Ok(())
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        self.inner.invalidate(key).await;
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &str) -> anyhow::Result<u64> {
        let keys: Vec<Arc<String>> = self
            .inner
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k)
            .collect();
        let mut removed = 0;
        for key in keys {
            if self.inner.remove(key.as_str()).await.is_some() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn incr(&self, key: &str, ttl: Duration) -> anyhow::Result<(i64, u64)> {
        // `and_compute_with` runs serially per key, which makes the read-modify-write atomic.
        let result = self
            .inner
            .entry(key.to_owned())
            .and_compute_with(|current| async move {
                match current {
                    None => Op::Put(Entry {
                        value: b"1".as_slice().into(),
                        expires_at: Instant::now() + ttl,
                    }),
                    Some(current) => {
                        let current = current.into_value();
                        match parse_counter(&current.value).and_then(|n| n.checked_add(1)) {
                            Some(next) => Op::Put(Entry {
                                value: next.to_string().into_bytes().into(),
                                expires_at: current.expires_at,
                            }),
                            // Reported below from the unchanged entry.
                            None => Op::Nop,
                        }
                    }
                }
            })
            .await;
        match result {
            CompResult::Inserted(entry) | CompResult::ReplacedWith(entry) => {
                let entry = entry.into_value();
                let value = parse_counter(&entry.value)
                    .ok_or_else(|| anyhow!("counter at {key} is not an integer"))?;
                let left = entry.expires_at.saturating_duration_since(Instant::now());
                Ok((value, ceil_secs(left)))
            }
            CompResult::Unchanged(_) => {
                bail!("value at {key} is not an integer or would overflow")
            }
            CompResult::StillNone(_) | CompResult::Removed(_) => {
                bail!("counter at {key} vanished while incrementing")
            }
        }
    }

    async fn add(&self, key: &str, delta: i64, ttl: Duration) -> anyhow::Result<i64> {
        // Serial per key, like `incr`; every call moves the deadline (sliding TTL).
        let result = self
            .inner
            .entry(key.to_owned())
            .and_compute_with(|current| async move {
                let base = match current {
                    None => Some(0),
                    Some(current) => parse_counter(&current.into_value().value),
                };
                match base.and_then(|n| n.checked_add(delta)) {
                    Some(next) => Op::Put(Entry {
                        value: next.to_string().into_bytes().into(),
                        expires_at: Instant::now() + ttl,
                    }),
                    None => Op::Nop,
                }
            })
            .await;
        match result {
            CompResult::Inserted(entry) | CompResult::ReplacedWith(entry) => {
                parse_counter(&entry.into_value().value)
                    .ok_or_else(|| anyhow!("counter at {key} is not an integer"))
            }
            _ => bail!("value at {key} is not an integer or would overflow"),
        }
    }

    async fn ping(&self) -> anyhow::Result<()> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

fn parse_counter(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Redis backend
// ---------------------------------------------------------------------------------------------

/// INCR, then start the window if the key has none (new key, or a key set without TTL).
/// One script so no other client sees a counter without its expiry. Returns `{value, pttl}`.
const INCR_SCRIPT: &str = r"
local v = redis.call('INCR', KEYS[1])
local t = redis.call('PTTL', KEYS[1])
if t < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  t = tonumber(ARGV[1])
end
return {v, t}
";

/// INCRBY (which refuses non-integers and overflow, leaving the value alone), then restart the
/// TTL; one script so the counter is never seen without its expiry.
const ADD_SCRIPT: &str = r"
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return v
";

/// How many keys one SCAN step asks for, and so the size of one UNLINK batch.
const SCAN_BATCH: usize = 500;

/// The shared cache: Redis through a reconnecting [`ConnectionManager`].
///
/// Every key is stored as `namespace + key`, so several installs (or parallel tests) can share
/// one Redis; `delete_prefix` only ever touches this namespace.
#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
    namespace: String,
}

impl fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The connection (and its URL, which may hold a password) is deliberately left out.
        f.debug_struct("RedisCache")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl RedisCache {
    /// Connects to `url` (`redis://…` or `rediss://…`) and checks the server answers.
    pub async fn connect(url: &str, namespace: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("invalid redis url")?;
        let conn = ConnectionManager::new(client)
            .await
            .context("failed to connect to redis")?;
        let cache = Self {
            conn,
            namespace: namespace.to_owned(),
        };
        cache.ping().await?;
        Ok(cache)
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.namespace)
    }
}

/// Escapes the glob characters of a literal so it can be used in `SCAN MATCH`.
fn glob_escape(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len() + 1);
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn ttl_millis(ttl: Duration) -> u64 {
    // Redis rejects a zero expiry; the shortest it accepts is 1 ms.
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait::async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let mut conn = self.conn.clone();
        redis::cmd("GET")
            .arg(self.key(key))
            .query_async(&mut conn)
            .await
            .context("redis get failed")
    }

    async fn set(&self, key: &str, value: Vec<u8>, ttl: Duration) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("PX")
            .arg(ttl_millis(ttl))
            .query_async::<()>(&mut conn)
            .await
            .context("redis set failed")
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("UNLINK")
            .arg(self.key(key))
            .query_async::<i64>(&mut conn)
            .await
            .context("redis unlink failed")?;
        Ok(())
    }

    async fn delete_prefix(&self, prefix: &str) -> anyhow::Result<u64> {
        let mut conn = self.conn.clone();
        let pattern = format!("{}*", glob_escape(&self.key(prefix)));
        let mut cursor: u64 = 0;
        let mut removed: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_BATCH)
                .query_async(&mut conn)
                .await
                .context("redis scan failed")?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await
                    .context("redis unlink failed")?;
                removed += n;
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    async fn incr(&self, key: &str, ttl: Duration) -> anyhow::Result<(i64, u64)> {
        let mut conn = self.conn.clone();
        let (value, pttl): (i64, i64) = redis::cmd("EVAL")
            .arg(INCR_SCRIPT)
            .arg(1)
            .arg(self.key(key))
            .arg(ttl_millis(ttl))
            .query_async(&mut conn)
            .await
            .context("redis incr failed")?;
        let left = Duration::from_millis(u64::try_from(pttl).unwrap_or(0));
        Ok((value, ceil_secs(left)))
    }

    async fn add(&self, key: &str, delta: i64, ttl: Duration) -> anyhow::Result<i64> {
        let mut conn = self.conn.clone();
        redis::cmd("EVAL")
            .arg(ADD_SCRIPT)
            .arg(1)
            .arg(self.key(key))
            .arg(delta)
            .arg(ttl_millis(ttl))
            .query_async(&mut conn)
            .await
            .context("redis add failed")
    }

    async fn ping(&self) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .context("redis ping failed")?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

/// Entries kept by the embedded cache when it is picked by [`connect_cache`].
const DEFAULT_MEMORY_ENTRIES: u64 = 100_000;

/// "memory" / "memory://" / "" → MemoryCache, "redis://…" or "rediss://…" → RedisCache (namespace "wamage:").
pub async fn connect_cache(url: &str) -> anyhow::Result<SharedCache> {
    let url = url.trim();
    if url.is_empty() || url == "memory" || url == "memory://" {
        return Ok(Arc::new(MemoryCache::new(DEFAULT_MEMORY_ENTRIES)));
    }
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        return Ok(Arc::new(RedisCache::connect(url, "wamage:").await?));
    }
    let scheme = url.split("://").next().unwrap_or(url);
    bail!("unsupported cache url scheme {scheme:?}: use \"memory\" or \"redis://…\"")
}
