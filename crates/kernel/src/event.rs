//! Domain events in the CloudEvents 1.0 envelope (structured JSON mode).
//!
//! Types are `wamage.<noun>.<verb>` (`wamage.member.invited`). `subject` carries the org so a
//! consumer can route without parsing `data`.

use std::fmt;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Value, value::RawValue};
use uuid::Uuid;

use crate::{id::OrgId, time::Timestamp};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    pub specversion: String,
    pub id: Uuid,
    /// The producing component, e.g. `/wamage/identity`.
    pub source: String,
    /// e.g. `wamage.user.registered`.
    #[serde(rename = "type")]
    pub type_: String,
    pub time: Timestamp,
    pub datacontenttype: String,
    /// The organisation the event belongs to (extension attribute).
    pub orgid: OrgId,
    pub data: EventData,
}

impl Event {
    /// An event of `type_` from `source` about `org`, its `data` encoded now (see
    /// [`EventData`]).
    pub fn new(
        source: &str,
        type_: &str,
        org: OrgId,
        time: Timestamp,
        data: impl Serialize,
    ) -> Self {
        Self::encoded(source, type_, org, time, EventData::encode(data))
    }

    /// [`Self::new`] with `data` already encoded.
    pub fn encoded(
        source: &str,
        type_: &str,
        org: OrgId,
        time: Timestamp,
        data: EventData,
    ) -> Self {
        Self {
            specversion: "1.0".to_owned(),
            id: Uuid::now_v7(),
            source: source.to_owned(),
            type_: type_.to_owned(),
            time,
            datacontenttype: "application/json".to_owned(),
            orgid: org,
            data,
        }
    }
}

/// An event's `data`, encoded as JSON once, when the event is made.
///
/// Subscribers of the in-process bus share one event; a subscriber that passes the data on
/// (to sockets, to another process) copies the text, and one that reads it parses what it
/// needs ([`Self::parse`], [`Self::value`]). Nothing builds a tree of values per event, or
/// frees one when the last subscriber is done with it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventData(Box<RawValue>);

impl EventData {
    /// Encodes `data`. Data that cannot be JSON (a map whose keys are not strings, a
    /// serializer's own error) is a bug of its publisher: it is logged, and the event carries
    /// `null` rather than being lost.
    pub fn encode(data: impl Serialize) -> Self {
        match serde_json::value::to_raw_value(&data) {
            Ok(raw) => Self(raw),
            Err(e) => {
                tracing::error!(error = %e, "event data is not JSON; published as null");
                Self::null()
            }
        }
    }

    /// JSON text already encoded (and checked to be JSON by the caller's serializer).
    pub fn from_raw(raw: Box<RawValue>) -> Self {
        Self(raw)
    }

    fn null() -> Self {
        Self(RawValue::NULL.to_owned())
    }

    /// The JSON text.
    pub fn json(&self) -> &str {
        self.0.get()
    }

    /// Reads the data as a `T` (the fields a subscriber needs, say).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.json())
    }

    /// The data as a tree of JSON values.
    pub fn value(&self) -> Value {
        // Valid JSON by construction: encoded by serde_json or read from JSON.
        self.parse().unwrap_or(Value::Null)
    }
}

impl fmt::Debug for EventData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.json())
    }
}

impl PartialEq for EventData {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn data_is_encoded_once_and_reads_back() {
        #[derive(Serialize)]
        struct Message<'a> {
            text: &'a str,
            n: u32,
        }
        let ev = Event::new(
            "/test",
            "wamage.test.made",
            OrgId::new(),
            Timestamp::from_millis(1),
            Message {
                text: "hi \"there\"",
                n: 3,
            },
        );
        assert_eq!(ev.data.json(), r#"{"text":"hi \"there\"","n":3}"#);
        assert_eq!(ev.data.value(), json!({"text": "hi \"there\"", "n": 3}));

        // The envelope carries the data as it is, not as a string.
        let wire = serde_json::to_value(&ev).unwrap();
        assert_eq!(wire["data"]["n"], 3);
        let back: Event = serde_json::from_value(wire).unwrap();
        assert_eq!(back.data.value(), ev.data.value());
        let text = serde_json::to_string(&ev).unwrap();
        let back: Event = serde_json::from_str(&text).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn data_that_cannot_be_json_is_published_as_null() {
        let mut bad = std::collections::HashMap::new();
        bad.insert((1, 2), "tuple keys are not JSON object keys");
        let ev = Event::new(
            "/test",
            "wamage.test.made",
            OrgId::new(),
            Timestamp::from_millis(1),
            bad,
        );
        assert_eq!(ev.data.json(), "null");
        assert_eq!(ev.data.value(), Value::Null);
    }
}
