//! Cache conformance: the same tests against every backend. `MemoryCache` always;
//! `RedisCache` when `WAMAGE_TEST_REDIS_URL` is set, each test in its own namespace.

#![allow(clippy::unwrap_used)]

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use serde::{Deserialize, Serialize};
use wamage_platform::cache::{
    Cache, MemoryCache, RedisCache, SharedCache, connect_cache, get_json, set_json,
};

const LONG: Duration = Duration::from_secs(60);

fn memory_cache() -> SharedCache {
    Arc::new(MemoryCache::new(10_000))
}

fn redis_url() -> Option<String> {
    std::env::var("WAMAGE_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

fn unique_namespace() -> String {
    format!("wamage-test:{}:", uuid::Uuid::new_v4().simple())
}

async fn redis_cache() -> Option<SharedCache> {
    let Some(url) = redis_url() else {
        eprintln!("skipped: WAMAGE_TEST_REDIS_URL is not set");
        return None;
    };
    let cache = RedisCache::connect(&url, &unique_namespace())
        .await
        .unwrap();
    Some(Arc::new(cache))
}

/// Generates one test per suite function for each backend; every Redis test cleans its
/// namespace afterwards.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let cache = super::memory_cache();
                    assert_eq!(cache.backend(), "memory");
                    super::$name(cache).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(cache) = super::redis_cache().await else { return };
                    assert_eq!(cache.backend(), "redis");
                    super::$name(cache.clone()).await;
                    cache.delete_prefix("").await.unwrap();
                }
            )*
        }
    };
}

conformance!(
    get_set_delete,
    set_replaces_value_and_ttl,
    entries_expire_after_their_ttl,
    delete_prefix_leaves_other_prefixes,
    incr_is_atomic_under_concurrency_and_resets_after_window,
    incr_on_non_integer_fails,
    add_is_atomic_and_goes_both_ways,
    add_slides_the_ttl,
    add_on_non_integer_fails,
    json_helpers_round_trip,
    ping_answers,
);

async fn get_set_delete(cache: SharedCache) {
    assert_eq!(cache.get("k").await.unwrap(), None);
    cache.set("k", b"v1".to_vec(), LONG).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), Some(b"v1".to_vec()));
    cache.set("k", b"v2".to_vec(), LONG).await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), Some(b"v2".to_vec()));
    // Binary values survive unchanged.
    let binary = vec![0u8, 255, 1, 254, 0];
    cache.set("bin", binary.clone(), LONG).await.unwrap();
    assert_eq!(cache.get("bin").await.unwrap(), Some(binary));
    cache.delete("k").await.unwrap();
    assert_eq!(cache.get("k").await.unwrap(), None);
    // Deleting a missing key is fine, and other keys are untouched.
    cache.delete("k").await.unwrap();
    assert!(cache.get("bin").await.unwrap().is_some());
}

async fn set_replaces_value_and_ttl(cache: SharedCache) {
    cache
        .set("k", b"short".to_vec(), Duration::from_millis(600))
        .await
        .unwrap();
    cache.set("k", b"long".to_vec(), LONG).await.unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(cache.get("k").await.unwrap(), Some(b"long".to_vec()));
}

async fn entries_expire_after_their_ttl(cache: SharedCache) {
    cache
        .set("short", b"x".to_vec(), Duration::from_millis(1200))
        .await
        .unwrap();
    cache.set("long", b"y".to_vec(), LONG).await.unwrap();
    assert_eq!(cache.get("short").await.unwrap(), Some(b"x".to_vec()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(cache.get("short").await.unwrap(), None);
    assert_eq!(cache.get("long").await.unwrap(), Some(b"y".to_vec()));
}

async fn delete_prefix_leaves_other_prefixes(cache: SharedCache) {
    for i in 0..25 {
        cache
            .set(&format!("contacts:org1:{i}"), b"a".to_vec(), LONG)
            .await
            .unwrap();
    }
    cache
        .set("contacts:org2:1", b"b".to_vec(), LONG)
        .await
        .unwrap();
    cache
        .set("contacts:org10:1", b"c".to_vec(), LONG)
        .await
        .unwrap();
    cache
        .set("users:org1:1", b"d".to_vec(), LONG)
        .await
        .unwrap();
    // Glob characters in a prefix are literal, not patterns.
    cache.set("odd:*:1", b"e".to_vec(), LONG).await.unwrap();
    cache.set("odd:x:1", b"f".to_vec(), LONG).await.unwrap();

    let removed = cache.delete_prefix("contacts:org1:").await.unwrap();
    assert_eq!(removed, 25);
    for i in 0..25 {
        assert_eq!(
            cache.get(&format!("contacts:org1:{i}")).await.unwrap(),
            None,
            "contacts:org1:{i} survived"
        );
    }
    assert_eq!(
        cache.get("contacts:org2:1").await.unwrap(),
        Some(b"b".to_vec())
    );
    assert_eq!(
        cache.get("contacts:org10:1").await.unwrap(),
        Some(b"c".to_vec())
    );
    assert_eq!(
        cache.get("users:org1:1").await.unwrap(),
        Some(b"d".to_vec())
    );

    assert_eq!(cache.delete_prefix("odd:*:").await.unwrap(), 1);
    assert_eq!(cache.get("odd:*:1").await.unwrap(), None);
    assert_eq!(cache.get("odd:x:1").await.unwrap(), Some(b"f".to_vec()));

    assert_eq!(cache.delete_prefix("nothing:").await.unwrap(), 0);
    // Keys written after a prefix deletion are readable again.
    cache
        .set("contacts:org1:0", b"new".to_vec(), LONG)
        .await
        .unwrap();
    assert_eq!(
        cache.get("contacts:org1:0").await.unwrap(),
        Some(b"new".to_vec())
    );
}

async fn incr_is_atomic_under_concurrency_and_resets_after_window(cache: SharedCache) {
    let window = Duration::from_millis(1200);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.incr("rl:login:1.2.3.4", window).await.unwrap() })
        })
        .collect();
    let mut values = BTreeSet::new();
    for task in tasks {
        let (value, secs_left) = task.await.unwrap();
        assert!((1..=2).contains(&secs_left), "secs_left = {secs_left}");
        values.insert(value);
    }
    // Every increment saw a distinct value: no two read the same count.
    assert_eq!(values, (1..=50).collect::<BTreeSet<i64>>());
    // The counter is readable as its decimal text on every backend.
    assert_eq!(
        cache.get("rl:login:1.2.3.4").await.unwrap(),
        Some(b"50".to_vec())
    );
    // A different key has its own window.
    assert_eq!(cache.incr("rl:login:5.6.7.8", window).await.unwrap().0, 1);

    // Later increments do not extend the window: after it ends the count starts again.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(cache.incr("rl:login:1.2.3.4", window).await.unwrap().0, 51);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (value, secs_left) = cache.incr("rl:login:1.2.3.4", window).await.unwrap();
    assert_eq!(value, 1);
    assert!((1..=2).contains(&secs_left), "secs_left = {secs_left}");
}

async fn incr_on_non_integer_fails(cache: SharedCache) {
    cache
        .set("k", b"not a number".to_vec(), LONG)
        .await
        .unwrap();
    assert!(cache.incr("k", LONG).await.is_err());
    assert_eq!(
        cache.get("k").await.unwrap(),
        Some(b"not a number".to_vec())
    );
}

async fn add_is_atomic_and_goes_both_ways(cache: SharedCache) {
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.add("conns:u1", 1, LONG).await.unwrap() })
        })
        .collect();
    let mut values = BTreeSet::new();
    for task in tasks {
        values.insert(task.await.unwrap());
    }
    // Every addition saw a distinct value: none was lost.
    assert_eq!(values, (1..=50).collect::<BTreeSet<i64>>());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.add("conns:u1", -1, LONG).await.unwrap() })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(cache.add("conns:u1", 0, LONG).await.unwrap(), 30);
    assert_eq!(cache.get("conns:u1").await.unwrap(), Some(b"30".to_vec()));
    // A missing key starts at 0 and may go below it.
    assert_eq!(cache.add("conns:u2", -2, LONG).await.unwrap(), -2);
    assert_eq!(cache.add("conns:u2", 5, LONG).await.unwrap(), 3);
    // `incr` and `add` read each other's counters.
    cache.incr("conns:u3", LONG).await.unwrap();
    assert_eq!(cache.add("conns:u3", 2, LONG).await.unwrap(), 3);
}

async fn add_slides_the_ttl(cache: SharedCache) {
    let ttl = Duration::from_millis(1200);
    assert_eq!(cache.add("c", 1, ttl).await.unwrap(), 1);
    // Each call restarts the window (unlike `incr`): touched every 700 ms it never expires.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(cache.add("c", 0, ttl).await.unwrap(), 1);
    }
    // Left alone, it expires and the next addition starts from 0.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(cache.get("c").await.unwrap(), None);
    assert_eq!(cache.add("c", 1, ttl).await.unwrap(), 1);
}

async fn add_on_non_integer_fails(cache: SharedCache) {
    cache.set("k", b"nope".to_vec(), LONG).await.unwrap();
    assert!(cache.add("k", 1, LONG).await.is_err());
    assert_eq!(cache.get("k").await.unwrap(), Some(b"nope".to_vec()));
    cache
        .set("max", i64::MAX.to_string().into_bytes(), LONG)
        .await
        .unwrap();
    assert!(cache.add("max", 1, LONG).await.is_err());
    assert_eq!(
        cache.get("max").await.unwrap(),
        Some(i64::MAX.to_string().into_bytes())
    );
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Profile {
    name: String,
    roles: Vec<String>,
}

async fn json_helpers_round_trip(cache: SharedCache) {
    let profile = Profile {
        name: "Ada".into(),
        roles: vec!["owner".into(), "agent".into()],
    };
    assert_eq!(get_json::<Profile>(&*cache, "p").await.unwrap(), None);
    set_json(&*cache, "p", &profile, LONG).await.unwrap();
    assert_eq!(
        get_json::<Profile>(&*cache, "p").await.unwrap(),
        Some(profile)
    );
    // Unsized values (slices, str) work too.
    set_json(&*cache, "s", "hello", LONG).await.unwrap();
    assert_eq!(
        get_json::<String>(&*cache, "s").await.unwrap().as_deref(),
        Some("hello")
    );
    // Bytes that are not the expected JSON are an error, not a silent miss.
    cache.set("bad", b"{not json".to_vec(), LONG).await.unwrap();
    assert!(get_json::<Profile>(&*cache, "bad").await.is_err());
}

async fn ping_answers(cache: SharedCache) {
    cache.ping().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Backend-specific
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn memory_cache_evicts_beyond_capacity() {
    let cache = MemoryCache::new(10);
    for i in 0..200 {
        cache.set(&format!("k{i}"), vec![1], LONG).await.unwrap();
    }
    let mut present = 0;
    for i in 0..200 {
        if cache.get(&format!("k{i}")).await.unwrap().is_some() {
            present += 1;
        }
    }
    assert!(present <= 20, "{present} entries kept with capacity 10");
}

#[tokio::test]
async fn redis_namespaces_are_isolated() {
    let Some(url) = redis_url() else {
        eprintln!("skipped: WAMAGE_TEST_REDIS_URL is not set");
        return;
    };
    let a = RedisCache::connect(&url, &unique_namespace())
        .await
        .unwrap();
    let b = RedisCache::connect(&url, &unique_namespace())
        .await
        .unwrap();
    a.set("k", b"a".to_vec(), LONG).await.unwrap();
    b.set("k", b"b".to_vec(), LONG).await.unwrap();
    assert_eq!(a.get("k").await.unwrap(), Some(b"a".to_vec()));
    assert_eq!(a.delete_prefix("").await.unwrap(), 1);
    assert_eq!(a.get("k").await.unwrap(), None);
    assert_eq!(b.get("k").await.unwrap(), Some(b"b".to_vec()));
    assert_eq!(b.delete_prefix("").await.unwrap(), 1);
}

#[tokio::test]
async fn connect_cache_picks_backend_from_url() {
    for url in ["", "memory", "memory://"] {
        assert_eq!(connect_cache(url).await.unwrap().backend(), "memory");
    }
    assert!(connect_cache("memcached://localhost").await.is_err());
    if let Some(url) = redis_url() {
        assert_eq!(connect_cache(&url).await.unwrap().backend(), "redis");
    }
}
