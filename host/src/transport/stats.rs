//! The connection's counters.

use super::Refusal;

/// Counters a caller can read at any time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TransportStats {
    /// Messages handed to the connection.
    pub messages: u64,
    /// Their payload bytes (headers not counted).
    pub payload_bytes: u64,
    /// Flushes that confirmed everything before them.
    pub flushes: u64,
    /// JetStream messages sent again after a failure that could pass.
    pub resent: u64,
    /// After a call that failed because JetStream refused a message: which messages since
    /// the last flush are confirmed. Cleared by the next flush that succeeds.
    pub refusal: Option<Refusal>,
}
