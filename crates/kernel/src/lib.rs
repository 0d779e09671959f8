//! The shared vocabulary of Wamage.
//!
//! Everything every other crate needs to speak the same language: typed ids (UUIDv7 newtypes),
//! the RFC 9457 `Problem` error body, a JSON extractor that names the field that is wrong,
//! keyset paging, the tenancy id (`OrgId`), a clock that tests can move, and the CloudEvents
//! envelope domain events travel in. No I/O lives here.

pub mod event;
pub mod id;
pub mod json;
pub mod paging;
pub mod problem;
pub mod time;
pub mod validate;

pub use event::Event;
pub use id::{OrgId, UserId};
pub use json::ApiJson;
pub use paging::{Page, PageQuery};
pub use problem::{FieldError, Problem};
pub use time::{Clock, Timestamp};
