//! Bus → sockets: every event with an `audience` goes to those rooms of its organisation.

use std::{
    collections::BTreeMap,
    sync::{Arc, atomic::Ordering},
};

use serde::Serialize;
use serde_json::{Value, value::RawValue};
use socketioxide::SocketIo;
use tokio_util::sync::CancellationToken;
use wamage_kernel::{Event, OrgId, Timestamp};

use crate::{
    AUDIENCE,
    gateway::Shared,
    room::{ORG, Room},
};

/// Most rooms one event may name; more is a publisher bug, the rest is dropped.
const MAX_AUDIENCE: usize = 64;

/// A frame's payload: the event's id, type (without `wamage.`), time and data without
/// `audience`, each field of the data copied as it was encoded.
#[derive(Serialize)]
pub(crate) struct Frame<'a> {
    id: uuid::Uuid,
    #[serde(rename = "type")]
    type_: &'a str,
    time: Timestamp,
    data: BTreeMap<String, &'a RawValue>,
}

/// The frame to send: event name, adapter room keys, payload. `None` when the event is not
/// meant for sockets.
pub(crate) fn route(event: &Event) -> Option<(&str, Vec<String>, Frame<'_>)> {
    // The data's top-level fields, their values left encoded.
    let mut data: BTreeMap<String, &RawValue> = serde_json::from_str(event.data.json()).ok()?;
    let audience: Value = serde_json::from_str(data.remove(AUDIENCE)?.get()).ok()?;
    let names: Vec<&str> = match &audience {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let keys = room_keys(event.orgid, &names);
    if keys.is_empty() {
        tracing::warn!(event_type = %event.type_, "event audience names no valid room, dropped");
        return None;
    }
    let name = event.type_.strip_prefix("wamage.").unwrap_or(&event.type_);
    let frame = Frame {
        id: event.id,
        type_: name,
        time: event.time,
        data,
    };
    Some((name, keys, frame))
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
            let Some((name, keys, frame)) = route(&event) else {
                continue;
            };
            // One emit for all rooms: the adapter encodes the packet once and each socket in
            // any of the rooms gets it once.
            if let Err(e) = io.to(keys).emit(name, &frame).await {
                tracing::debug!(error = %e, event_type = %name, "some sockets missed an event");
            }
            let lag_ms = shared
                .clock
                .now()
                .millis()
                .saturating_sub(event.time.millis())
                .max(0);
            metrics::histogram!("wamage_realtime_fanout_seconds").record(lag_ms as f64 / 1000.0);
            metrics::counter!("wamage_realtime_events_out_total", "event" => name.to_owned())
                .increment(1);
        }
    });
}

#[cfg(test)]
mod tests {
    use serde_json::json;

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

        let addressed = event(
            org,
            json!({"text": "hi", "audience": [format!("chat:{chat}"), format!("org:{other}"), format!("chat:{chat}")]}),
        );
        let (name, keys, payload) = route(&addressed).unwrap();
        assert_eq!(name, "chat.message.created");
        // The other organisation's room is dropped, duplicates are merged, and the key is
        // always under the envelope's organisation.
        assert_eq!(keys, vec![format!("{org}/chat:{chat}")]);
        let payload = serde_json::to_value(&payload).unwrap();
        assert_eq!(payload["data"], json!({"text": "hi"}));
        assert_eq!(payload["type"], "chat.message.created");
        assert_eq!(payload["time"], "1970-01-01T00:00:00.000Z");

        let to_org = event(org, json!({"audience": format!("org:{org}")}));
        let (_, keys, _) = route(&to_org).unwrap();
        assert_eq!(keys, vec![format!("{org}/org:{org}")]);
    }
}
