//! Parts of the `nats-sink` command line that are not the library's.

pub mod options;
