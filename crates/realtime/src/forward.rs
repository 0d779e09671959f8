//! Bus → sockets: every event with an `audience` goes to those rooms of its organisation.

use std::sync::{Arc, atomic::Ordering};

use serde_json::{Value, json};
use socketioxide::SocketIo;
use tokio_util::sync::CancellationToken;
use wamage_kernel::{Event, OrgId};

use crate::{
    AUDIENCE,
    gateway::Shared,
    room::{ORG, Room},
};

/// Most rooms one event may name; more is a publisher bug, the rest is dropped.
const MAX_AUDIENCE: usize = 64;

/// The frame to send: event name, adapter room keys, payload. `None` when the event is not
/// meant for sockets.
pub(crate) fn route(event: &Event) -> Option<(String, Vec<String>, Value)> {
    let Value::Object(data) = &event.data else {
        return None;
    };
    let audience = data.get(AUDIENCE)?;
    let names: Vec<&str> = match audience {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let keys = room_keys(event.orgid, &names);
    if keys.is_empty() {
        tracing::warn!(event_type = %event.type_, "event audience names no valid room, dropped");
        return None;
    }
    let mut data = data.clone();
    data.remove(AUDIENCE);
    let name = event
        .type_
        .strip_prefix("wamage.")
        .unwrap_or(&event.type_)
        .to_owned();
    let payload = json!({
        "id": event.id,
        "type": name,
        "time": event.time,
        "data": Value::Object(data),
    });
    Some((name, keys, payload))
}

/// Adapter keys of the named rooms inside `org`. An `org:` room must be `org` itself.
fn room_keys(org: OrgId, names: &[&str]) -> Vec<String> {
    let mut keys = Vec::new();
    for name in names.iter().take(MAX_AUDIENCE) {
        match Room::parse(name) {
            Ok(room) if room.kind() == ORG && room.id() != org.as_uuid() => {
                tracing::warn!(room = %room, org = %org, "event addressed to another organisation, room dropped");
            }
            Ok(room) => {
                let key = room.key(org);
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            Err(_) => tracing::warn!(room = %name, "invalid room in an event audience, dropped"),
        }
    }
    keys
}

pub(crate) fn spawn(io: SocketIo, shared: Arc<Shared>, stop: CancellationToken) {
    let mut sub = shared.bus.subscribe("*");
    tokio::spawn(async move {
        loop {
            let event = tokio::select! {
                () = stop.cancelled() => return,
                event = sub.recv_shared() => match event {
                    Some(event) => event,
                    None => return,
                },
            };
            // No socket here, so no room has a member: nothing to build or encode.
            if shared.sockets.load(Ordering::SeqCst) == 0 {
                continue;
            }
            let Some((name, keys, payload)) = route(&event) else {
                continue;
            };
            // One emit for all rooms: the adapter encodes the packet once and each socket in
            // any of the rooms gets it once.
            if let Err(e) = io.to(keys).emit(&name, &payload).await {
                tracing::debug!(error = %e, event_type = %name, "some sockets missed an event");
            }
            let lag_ms = shared
                .clock
                .now()
                .millis()
                .saturating_sub(event.time.millis())
                .max(0);
            metrics::histogram!("wamage_realtime_fanout_seconds").record(lag_ms as f64 / 1000.0);
            metrics::counter!("wamage_realtime_events_out_total", "event" => name).increment(1);
        }
    });
}

#[cfg(test)]
mod tests {
    use wamage_kernel::Timestamp;

    use super::*;

    fn event(org: OrgId, data: Value) -> Event {
        Event::new(
            "/test",
            "wamage.chat.message.created",
            org,
            Timestamp::from_millis(0),
            data,
        )
    }

    #[test]
    fn routes_only_addressed_events_inside_their_org() {
        let org = OrgId::new();
        let other = OrgId::new();
        let chat = uuid::Uuid::now_v7();
        assert!(route(&event(org, json!({"text": "hi"}))).is_none());
        assert!(route(&event(org, json!("not an object"))).is_none());
        assert!(route(&event(org, json!({"audience": ["nonsense", 3]}))).is_none());

        let (name, keys, payload) = route(&event(
            org,
            json!({"text": "hi", "audience": [format!("chat:{chat}"), format!("org:{other}"), format!("chat:{chat}")]}),
        ))
        .unwrap();
        assert_eq!(name, "chat.message.created");
        // The other organisation's room is dropped, duplicates are merged, and the key is
        // always under the envelope's organisation.
        assert_eq!(keys, vec![format!("{org}/chat:{chat}")]);
        assert_eq!(payload["data"], json!({"text": "hi"}));
        assert_eq!(payload["type"], "chat.message.created");

        let (_, keys, _) = route(&event(org, json!({"audience": format!("org:{org}")}))).unwrap();
        assert_eq!(keys, vec![format!("{org}/org:{org}")]);
    }
}
