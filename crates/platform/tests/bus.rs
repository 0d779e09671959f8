#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use futures::StreamExt as _;
use serde_json::json;
use wamage_kernel::{Event, OrgId, Timestamp};
use wamage_platform::bus::{Bus, InProcessBus, Subscription, connect_bus, pattern_matches};

fn event(type_: &str, n: i64) -> Event {
    Event::new(
        "/wamage/test",
        type_,
        OrgId::new(),
        Timestamp::from_millis(1_700_000_000_000),
        json!({ "n": n }),
    )
}

/// Next event, failing the test instead of hanging when none comes.
async fn next(sub: &mut Subscription) -> Event {
    tokio::time::timeout(Duration::from_secs(2), sub.recv())
        .await
        .expect("no event within 2 s")
        .expect("bus closed")
}

/// Asserts nothing (more) is delivered; the bus is in-process, so a short wait suffices.
async fn assert_empty(sub: &mut Subscription) {
    let got = tokio::time::timeout(Duration::from_millis(50), sub.recv()).await;
    assert!(got.is_err(), "unexpected event: {got:?}");
}

#[test]
fn patterns_match_exactly_by_prefix_or_everything() {
    assert!(pattern_matches("*", "wamage.member.invited"));
    assert!(pattern_matches("wamage.member.*", "wamage.member.invited"));
    assert!(!pattern_matches(
        "wamage.member.*",
        "wamage.members.invited"
    ));
    assert!(!pattern_matches(
        "wamage.member.*",
        "wamage.user.registered"
    ));
    assert!(pattern_matches(
        "wamage.user.registered",
        "wamage.user.registered"
    ));
    assert!(!pattern_matches(
        "wamage.user.registered",
        "wamage.user.registered.v2"
    ));
    assert!(!pattern_matches("wamage.user", "wamage.user.registered"));
}

#[tokio::test]
async fn subscribers_get_matching_events_in_order() {
    let bus = InProcessBus::new(64);
    let mut members = bus.subscribe("wamage.member.*");
    let mut exact = bus.subscribe("wamage.user.registered");
    let mut all = bus.subscribe("*");

    bus.publish(event("wamage.member.invited", 1))
        .await
        .unwrap();
    bus.publish(event("wamage.user.registered", 2))
        .await
        .unwrap();
    bus.publish(event("wamage.member.removed", 3))
        .await
        .unwrap();
    bus.publish(event("wamage.message.received", 4))
        .await
        .unwrap();

    let a = next(&mut members).await;
    let b = next(&mut members).await;
    assert_eq!(
        (a.type_.as_str(), a.data.value()["n"].as_i64()),
        ("wamage.member.invited", Some(1))
    );
    assert_eq!(
        (b.type_.as_str(), b.data.value()["n"].as_i64()),
        ("wamage.member.removed", Some(3))
    );
    assert_empty(&mut members).await;

    assert_eq!(next(&mut exact).await.data.value()["n"], 2);
    assert_empty(&mut exact).await;

    // The Stream impl yields the same events as recv().
    let got: Vec<i64> = (&mut all)
        .take(4)
        .map(|e| e.data.value()["n"].as_i64().unwrap())
        .collect()
        .await;
    assert_eq!(got, vec![1, 2, 3, 4]);
}

#[tokio::test]
async fn events_are_delivered_whole_to_every_subscriber() {
    let bus = InProcessBus::new(8);
    let mut subs: Vec<_> = (0..3).map(|_| bus.subscribe("*")).collect();
    let sent = event("wamage.user.registered", 7);
    bus.publish(sent.clone()).await.unwrap();
    for sub in &mut subs {
        assert_eq!(next(sub).await, sent);
    }
}

#[tokio::test]
async fn shared_readers_get_the_published_event_without_a_copy() {
    let bus = InProcessBus::new(8);
    let mut a = bus.subscribe("*");
    let mut b = bus.subscribe("wamage.user.*");
    let mut owned = bus.subscribe("*");
    let sent = event("wamage.user.registered", 9);
    bus.publish(sent.clone()).await.unwrap();
    let from_a = a.recv_shared().await.unwrap();
    let from_b = b.recv_shared().await.unwrap();
    assert!(Arc::ptr_eq(&from_a, &from_b), "one event, shared");
    assert_eq!(*from_a, sent);
    assert_eq!(next(&mut owned).await, sent);
}

#[tokio::test]
async fn only_live_subscribers_receive() {
    let bus = InProcessBus::new(8);
    // Nobody listens: publishing still succeeds, the event is simply gone.
    bus.publish(event("wamage.user.registered", 1))
        .await
        .unwrap();
    let mut late = bus.subscribe("*");
    bus.publish(event("wamage.user.registered", 2))
        .await
        .unwrap();
    assert_eq!(next(&mut late).await.data.value()["n"], 2);
    assert_empty(&mut late).await;
}

#[tokio::test]
async fn lagging_subscriber_loses_oldest_events_and_counts_them() {
    let bus = InProcessBus::new(4);
    let mut slow = bus.subscribe("wamage.member.*");
    let mut other = bus.subscribe("*");
    for n in 0..10 {
        bus.publish(event("wamage.member.invited", n))
            .await
            .unwrap();
    }
    // The 6 oldest are lost; the subscription keeps working with the 4 newest.
    for n in 6..10 {
        assert_eq!(next(&mut slow).await.data.value()["n"], n);
    }
    assert_eq!(slow.lagged(), 6);
    assert_empty(&mut slow).await;

    bus.publish(event("wamage.member.removed", 10))
        .await
        .unwrap();
    assert_eq!(next(&mut slow).await.data.value()["n"], 10);
    assert_eq!(slow.lagged(), 6);

    // The other subscriber lagged independently.
    assert_eq!(next(&mut other).await.data.value()["n"], 7);
    assert_eq!(other.lagged(), 7);
}

#[tokio::test]
async fn subscription_ends_when_bus_is_dropped() {
    let bus = InProcessBus::new(4);
    let mut sub = bus.subscribe("*");
    bus.publish(event("wamage.user.registered", 1))
        .await
        .unwrap();
    drop(bus);
    // Already buffered events are still delivered, then the stream ends.
    assert_eq!(next(&mut sub).await.data.value()["n"], 1);
    assert!(sub.recv().await.is_none());
}

#[tokio::test]
async fn connect_bus_picks_backend_from_url() {
    for url in ["", "memory", "memory://"] {
        let bus = connect_bus(url).await.unwrap();
        assert_eq!(bus.backend(), "memory");
        bus.ping().await.unwrap();
    }
    let err = connect_bus("nats://127.0.0.1:4222").await.unwrap_err();
    assert!(
        err.to_string().contains("NATS bus is not built yet"),
        "{err}"
    );
    assert!(connect_bus("kafka://localhost").await.is_err());
}
