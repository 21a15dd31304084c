//! Parts of the `nats-sink` command line that are not the library's.

pub mod deliver;
pub mod options;
pub mod reader;
pub mod resume;
pub mod signals;
pub mod state;
