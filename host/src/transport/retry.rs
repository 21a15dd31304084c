//! The retry budget of JetStream messages, apart from any client: each message has its own
//! count of sends (`max-attempts`, counting the first) and its own time (`max-elapsed-ms`,
//! from its first failure), as the WIT's `delivery` record says and the Python and Node hosts
//! count. So a message that first fails late gets as many sends as one that fails early.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A message's identity while it is unconfirmed: its place among the messages since the last
/// flush.
pub(crate) type MessageId = u64;

/// How hard to try one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    /// Sends of one message, counting the first; 0 counts as 1 (the first send is always made).
    pub(crate) max_attempts: u32,
    /// Time from a message's first failure to giving up on it.
    pub(crate) max_elapsed: Duration,
}

/// What to do with messages whose send or ack failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Nothing waits for a resend.
    Nothing,
    /// Send them again after a backoff for resend number `attempt` (1 for the first), and
    /// within `within`, the least time any of them has left.
    Resend { attempt: u32, within: Duration },
    /// A message's budget is spent: report it.
    GiveUp {
        id: MessageId,
        sends: u32,
        elapsed: Duration,
    },
}

#[derive(Debug, Clone, Copy)]
struct Record {
    sends: u32,
    first_failure: Option<Instant>,
}

/// The sends and first failure of every unconfirmed message. Bounded by the messages in flight
/// and queued for a resend: a confirmed or forgotten message leaves.
#[derive(Debug)]
pub(crate) struct Retries {
    budget: Budget,
    messages: HashMap<MessageId, Record>,
}

impl Retries {
    pub(crate) fn new(budget: Budget) -> Retries {
        Retries {
            budget,
            messages: HashMap::new(),
        }
    }

    /// A send of `id` was made (the first or a resend).
    pub(crate) fn sent(&mut self, id: MessageId) {
        self.messages
            .entry(id)
            .or_insert(Record {
                sends: 0,
                first_failure: None,
            })
            .sends += 1;
    }

    /// A send or ack of `id` failed in a way that can pass; its time budget starts at the first.
    pub(crate) fn failed(&mut self, id: MessageId, now: Instant) {
        let record = self.messages.entry(id).or_insert(Record {
            sends: 0,
            first_failure: None,
        });
        record.first_failure.get_or_insert(now);
    }

    /// `id` is acked: it leaves.
    pub(crate) fn confirmed(&mut self, id: MessageId) {
        self.messages.remove(&id);
    }

    /// Every message leaves (after an error the caller replays them).
    pub(crate) fn forget_all(&mut self) {
        self.messages.clear();
    }

    /// Sends of `id` so far.
    #[cfg(test)]
    fn sends(&self, id: MessageId) -> u32 {
        self.messages.get(&id).map_or(0, |r| r.sends)
    }

    /// Whether the failed messages `ids` may be sent again at `now`, and how.
    pub(crate) fn plan(&self, ids: impl IntoIterator<Item = MessageId>, now: Instant) -> Plan {
        let mut plan = Plan::Nothing;
        for id in ids {
            let record = self.messages.get(&id).copied().unwrap_or(Record {
                sends: 0,
                first_failure: None,
            });
            let elapsed = record
                .first_failure
                .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
            if record.sends >= self.budget.max_attempts.max(1) || elapsed >= self.budget.max_elapsed
            {
                return Plan::GiveUp {
                    id,
                    sends: record.sends,
                    elapsed,
                };
            }
            let left = self.budget.max_elapsed - elapsed;
            plan = match plan {
                Plan::Resend { attempt, within } => Plan::Resend {
                    attempt: attempt.max(record.sends),
                    within: within.min(left),
                },
                _ => Plan::Resend {
                    attempt: record.sends,
                    within: left,
                },
            };
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BUDGET: Budget = Budget {
        max_attempts: 4,
        max_elapsed: Duration::from_secs(60),
    };

    #[test]
    fn a_message_that_first_fails_late_gets_its_own_sends() {
        let t0 = Instant::now();
        let mut retries = Retries::new(BUDGET);
        // Message 0 fails three times; message 1 is sent with its third resend and fails.
        retries.sent(0);
        for _ in 0..3 {
            retries.failed(0, t0);
            assert!(matches!(retries.plan([0], t0), Plan::Resend { .. }));
            retries.sent(0);
        }
        retries.sent(1);
        retries.failed(0, t0);
        retries.failed(1, t0);
        assert_eq!(
            retries.plan([0, 1], t0),
            Plan::GiveUp {
                id: 0,
                sends: 4,
                elapsed: Duration::ZERO
            }
        );
        assert_eq!(
            retries.plan([1], t0),
            Plan::Resend {
                attempt: 1,
                within: BUDGET.max_elapsed
            }
        );
    }

    #[test]
    fn time_counts_from_each_messages_first_failure() {
        let t0 = Instant::now();
        let mut retries = Retries::new(BUDGET);
        retries.sent(0);
        retries.failed(0, t0);
        let later = t0 + Duration::from_secs(50);
        retries.sent(1);
        retries.failed(1, later);
        assert_eq!(
            retries.plan([0, 1], later),
            Plan::Resend {
                attempt: 1,
                within: Duration::from_secs(10)
            }
        );
        let end = t0 + BUDGET.max_elapsed;
        assert!(matches!(
            retries.plan([1, 0], end),
            Plan::GiveUp { id: 0, .. }
        ));
        assert!(matches!(retries.plan([1], end), Plan::Resend { .. }));
    }

    #[test]
    fn a_confirmed_message_leaves_and_a_budget_of_zero_still_sends_once() {
        let t0 = Instant::now();
        let mut retries = Retries::new(Budget {
            max_attempts: 0,
            max_elapsed: Duration::from_secs(1),
        });
        retries.sent(7);
        retries.confirmed(7);
        assert_eq!(retries.sends(7), 0);
        assert_eq!(retries.plan([], t0), Plan::Nothing);
        retries.sent(8);
        retries.failed(8, t0);
        assert!(matches!(
            retries.plan([8], t0),
            Plan::GiveUp { sends: 1, .. }
        ));
    }

    /// What becomes of one send of a message.
    #[derive(Debug, Clone, Copy)]
    enum Outcome {
        Acked,
        Transient,
    }

    /// A driver as `jetstream.rs` is one: messages sent in order, one unconfirmed message per
    /// key at a time, failed ones resent together in rounds until each is acked or the plan
    /// gives up. Outcomes are drawn per send; a message's sends beyond its list are acked.
    struct Sim<'a> {
        keys: &'a [u8],
        outcomes: &'a [Vec<Outcome>],
        retries: Retries,
        sends: Vec<u32>,
        confirmed: Vec<bool>,
        acked: Vec<(u8, usize)>,
        failed: Vec<usize>,
        given_up: bool,
        now: Instant,
    }

    impl Sim<'_> {
        fn send(&mut self, i: usize) {
            self.retries.sent(i as u64);
            self.sends[i] += 1;
            let outcome = self.outcomes[i].get(self.sends[i] as usize - 1);
            match outcome.copied().unwrap_or(Outcome::Acked) {
                Outcome::Acked => {
                    self.retries.confirmed(i as u64);
                    self.confirmed[i] = true;
                    self.acked.push((self.keys[i], i));
                }
                Outcome::Transient => {
                    self.retries.failed(i as u64, self.now);
                    self.failed.push(i);
                }
            }
        }

        /// One resend round of every failed message; false once the plan gives up.
        fn round(&mut self) -> bool {
            match self
                .retries
                .plan(self.failed.iter().map(|&j| j as u64), self.now)
            {
                Plan::GiveUp { .. } => {
                    self.given_up = true;
                    false
                }
                Plan::Nothing => true,
                Plan::Resend { .. } => {
                    self.now += Duration::from_millis(1);
                    for j in std::mem::take(&mut self.failed) {
                        self.send(j);
                    }
                    true
                }
            }
        }
    }

    /// Returns each message's sends, whether it was confirmed, and the acks in order.
    /// `rounds_before[i]` resend rounds run before message `i` is first sent.
    fn drive(
        keys: &[u8],
        outcomes: &[Vec<Outcome>],
        rounds_before: &[usize],
        max_attempts: u32,
    ) -> (Vec<u32>, Vec<bool>, Vec<(u8, usize)>) {
        let n = keys.len();
        let mut sim = Sim {
            keys,
            outcomes,
            retries: Retries::new(Budget {
                max_attempts,
                max_elapsed: Duration::from_secs(3600),
            }),
            sends: vec![0; n],
            confirmed: vec![false; n],
            acked: Vec::new(),
            failed: Vec::new(),
            given_up: false,
            now: Instant::now(),
        };
        'messages: for i in 0..n {
            for _ in 0..rounds_before.get(i).copied().unwrap_or(0) {
                if !sim.round() {
                    break 'messages;
                }
            }
            // Order per key: settle every failed message on this key first.
            while sim.failed.iter().any(|&j| keys[j] == keys[i]) {
                if !sim.round() {
                    break 'messages;
                }
            }
            sim.send(i);
        }
        // The flush: every failed message until acked or given up.
        while !sim.given_up && !sim.failed.is_empty() {
            sim.round();
        }
        assert!(sim.given_up || sim.confirmed.iter().all(|&c| c));
        (sim.sends, sim.confirmed, sim.acked)
    }

    fn outcome() -> impl Strategy<Value = Outcome> {
        prop_oneof![Just(Outcome::Acked), Just(Outcome::Transient)]
    }

    proptest! {
        #[test]
        fn sends_stay_in_budget_every_message_is_settled_and_order_per_key_holds(
            keys in prop::collection::vec(0u8..4, 1..24),
            outcomes in prop::collection::vec(prop::collection::vec(outcome(), 0..8), 24),
            rounds_before in prop::collection::vec(0usize..3, 24),
            max_attempts in 1u32..6,
        ) {
            let (sends, confirmed, acked) = drive(&keys, &outcomes, &rounds_before, max_attempts);
            for (i, &s) in sends.iter().enumerate() {
                prop_assert!(s <= max_attempts, "message {i} sent {s} times");
            }
            // Every message is confirmed, or the run reports a give-up, and then a message
            // left unconfirmed had spent its sends.
            if confirmed.iter().any(|&c| !c) {
                prop_assert!(sends.iter().zip(&confirmed).any(|(&s, &c)| !c && s == max_attempts));
            }
            for key in 0u8..4 {
                let order: Vec<usize> = acked.iter().filter(|(k, _)| *k == key).map(|&(_, i)| i).collect();
                prop_assert!(order.windows(2).all(|w| w[0] < w[1]), "key {key}: acked in {order:?}");
            }
        }

        #[test]
        fn a_message_failing_late_gets_as_many_sends_as_one_failing_early(
            max_attempts in 2u32..8,
            early_failures in 1usize..8,
            rounds_before_late in 0usize..8,
        ) {
            // Message 0 fails a few times (fewer than its budget), then is acked; message 1,
            // on another key, is first sent after some of those resends, and always fails.
            let early_failures = early_failures.min(max_attempts as usize - 1);
            let outcomes = vec![vec![Outcome::Transient; early_failures], vec![Outcome::Transient; 16]];
            let (sends, confirmed, _) = drive(&[0, 1], &outcomes, &[0, rounds_before_late], max_attempts);
            prop_assert!(confirmed[0]);
            prop_assert!(!confirmed[1]);
            prop_assert_eq!(sends[1], max_attempts);
        }
    }
}
