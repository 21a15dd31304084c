//! Rows given as columns: one Arrow IPC stream, read zero-copy (`ipc`) and written column by
//! column with the same per-type writers as `write` (`column`). The type mapping itself is
//! `nats_sink_arrow_map`'s, shared with hosts that derive a sink schema from Arrow.

pub mod column;
pub mod ipc;
pub mod ops;
