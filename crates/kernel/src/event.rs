//! Domain events in the CloudEvents 1.0 envelope (structured JSON mode).
//!
//! Types are `wamage.<noun>.<verb>` (`wamage.member.invited`). `subject` carries the org so a
//! consumer can route without parsing `data`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
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
    pub data: Value,
}

impl Event {
    pub fn new(source: &str, type_: &str, org: OrgId, time: Timestamp, data: Value) -> Self {
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
