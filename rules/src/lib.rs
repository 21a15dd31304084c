//! Rules that the host and the guest must apply alike, kept in one place so that neither
//! links the other: this crate has no I/O and no WIT bindings, and builds for any target.

#![deny(missing_docs)]

pub mod append;
pub mod control_headers;
pub mod json_string;
pub mod nats_names;
pub mod nkey_seed;
pub mod numeric;
pub mod option_problem;
pub mod packed;
pub mod schema;
pub mod secrets;
pub mod server_url;
pub mod span;
pub mod suggest;
