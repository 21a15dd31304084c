//! What JetStream did with the messages since the last flush once it refused one: the others
//! in flight are still stored or not, so the error says which (issue 26: a refusal mid-batch
//! was reported as the whole batch unconfirmed, though its other rows were in the stream).

/// Which messages since the last flush JetStream refused, after a call failed on a refusal.
/// Positions count the messages handed to the connection since the last flush, from 0; for
/// a sink that publishes one message per row, that is the row's place in the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// Every message before this position is confirmed; the one at it is not (refused, or
    /// left unconfirmed by the refusal).
    pub confirmed_before: u64,
    /// The first refused message's position.
    pub first_refused: u64,
    /// Messages handed to the connection since the last flush.
    pub handed: u64,
    /// Of those, how many JetStream confirmed (stored), before and after the refusal.
    pub confirmed: u64,
    /// Of those, how many JetStream refused.
    pub refused: u64,
}

impl Refusal {
    /// The counts, in words to follow the first refusal's own message.
    pub fn describe(&self) -> String {
        let unconfirmed = self.handed - self.confirmed - self.refused;
        let mut text = format!(
            "it was message {} of the {} sent since the last flush: {} of them are confirmed (stored in the stream), {} refused",
            self.first_refused + 1,
            self.handed,
            self.confirmed,
            self.refused
        );
        if unconfirmed > 0 {
            text.push_str(&format!(", {unconfirmed} not confirmed"));
        }
        match self.confirmed_before {
            0 => text.push_str("; none before it is confirmed"),
            1 => text.push_str("; message 1 is confirmed"),
            n => text.push_str(&format!("; messages 1–{n} are all confirmed")),
        }
        text
    }
}

/// The tally of the messages since the last flush, kept while they are sent and acked.
#[derive(Debug, Default)]
pub(super) struct SinceFlush {
    /// Messages handed to the connection: the next one's position.
    pub(super) handed: u64,
    /// JetStream acks that confirmed a message.
    pub(super) confirmed: u64,
    /// Messages JetStream refused.
    pub(super) refused: u64,
    /// The first refused message's position.
    pub(super) first_refused: Option<u64>,
    /// The lowest position not confirmed (refused, failed, or left for a resend).
    pub(super) first_unconfirmed: Option<u64>,
    /// Core NATS messages among those handed: they are confirmed only at the flush's end.
    pub(super) core: u64,
}

impl SinceFlush {
    /// The next message's position.
    pub(super) fn hand(&mut self, jetstream: bool) -> u64 {
        let position = self.handed;
        self.handed += 1;
        if !jetstream {
            self.core += 1;
        }
        position
    }

    pub(super) fn not_confirmed(&mut self, position: u64) {
        self.first_unconfirmed = Some(self.first_unconfirmed.map_or(position, |p| p.min(position)));
    }

    pub(super) fn refused(&mut self, position: u64) {
        self.refused += 1;
        self.first_refused.get_or_insert(position);
        self.not_confirmed(position);
    }

    /// What the tally says, once every ack in flight is in; `None` without a refusal, or when
    /// core NATS messages (confirmed only by a whole flush) are among them.
    pub(super) fn refusal(&self) -> Option<Refusal> {
        let first_refused = self.first_refused?;
        if self.core > 0 {
            return None;
        }
        Some(Refusal {
            confirmed_before: self.first_unconfirmed.unwrap_or(first_refused),
            first_refused,
            handed: self.handed,
            confirmed: self.confirmed,
            refused: self.refused,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_its_message_and_counts_the_others() {
        let mut tally = SinceFlush::default();
        for _ in 0..10 {
            tally.hand(true);
        }
        tally.confirmed = 8;
        tally.refused(5);
        tally.not_confirmed(7);
        let refusal = tally.refusal().unwrap();
        assert_eq!(refusal.confirmed_before, 5);
        assert_eq!(
            refusal.describe(),
            "it was message 6 of the 10 sent since the last flush: 8 of them are confirmed (stored in the stream), 1 refused, 1 not confirmed; messages 1–5 are all confirmed"
        );
        // A message left for a resend before the refused one bounds the confirmed prefix.
        tally.not_confirmed(2);
        assert_eq!(tally.refusal().unwrap().confirmed_before, 2);
        // With core messages in the flush, no prefix can be vouched for.
        tally.hand(false);
        assert_eq!(tally.refusal(), None);
        assert_eq!(SinceFlush::default().refusal(), None);
    }
}
