//! The `wamage` binary's library half: configuration, composition of the domains, the HTTP
//! application and the run loop. `main.rs` is only the command line on top of it; the testkit
//! builds the same application in-process.

pub mod app;
pub mod config;
pub mod http;
pub mod ops;
pub mod run;
pub mod web;

pub use app::{AppState, BuildOptions};
pub use config::{Config, Overrides, ServerRole};
