//! Test support: real `nats-server` processes on free loopback ports, the built component and
//! CLI, and NATS JWTs for operator-mode servers. Each job has its module; everything is
//! re-exported here so tests `use nats_sink_tests::*`.

pub mod arrow;
pub mod artifacts;
pub mod cli;
pub mod components;
pub mod memory;
pub mod options;
pub mod options_doc;
pub mod pki;
pub mod rows;
pub mod servers;
pub mod streaming;

pub use artifacts::*;
pub use cli::*;
pub use components::*;
pub use options::*;
pub use pki::*;
pub use rows::*;
pub use servers::*;
