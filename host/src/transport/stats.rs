//! The connection's counters.

/// Counters a caller can read at any time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TransportStats {
    pub messages: u64,
    pub payload_bytes: u64,
    pub flushes: u64,
    /// JetStream messages sent again after a failure that could pass.
    pub resent: u64,
}
