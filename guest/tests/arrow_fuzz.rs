//! Hostile Arrow IPC: valid streams mutated (bytes flipped, words overwritten with edge values,
//! cut short, spliced, padded) go through `write_arrow` of the native guest. Whatever the
//! bytes, the outcome is success or a refusal (`invalid-row`, `invalid-schema`), never a
//! panic, which in the component is a trap.

mod arrow_support;

use arrow_support::*;
use nats_sink_guest::sink::SinkError;
use proptest::prelude::*;

/// One change to a stream's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Word { at: usize, value: u64, width: u8 },
    Truncate { at: usize },
    Splice { at: usize, bytes: Vec<u8> },
    Repeat { from: usize, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let edge = prop_oneof![
        Just(0u64),
        Just(u64::MAX),
        Just(i64::MAX as u64),
        Just(i64::MIN as u64),
        Just(u32::MAX as u64),
        Just(0x8000_0000),
        Just(1),
        Just(7),
        Just(1 << 40),
        any::<u64>(),
    ];
    prop_oneof![
        4 => (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        4 => (any::<usize>(), edge, prop_oneof![Just(1u8), Just(2), Just(4), Just(8)])
            .prop_map(|(at, value, width)| Mutation::Word { at, value, width }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Splice { at, bytes }),
        1 => (any::<usize>(), 1usize..200).prop_map(|(from, len)| Mutation::Repeat { from, len }),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let n = bytes.len();
    match mutation {
        Mutation::Flip { at, bit } => bytes[at % n] ^= 1 << bit,
        Mutation::Word { at, value, width } => {
            let at = at % n;
            let le = value.to_le_bytes();
            for (i, b) in le.iter().take(*width as usize).enumerate() {
                if let Some(slot) = bytes.get_mut(at + i) {
                    *slot = *b;
                }
            }
        }
        Mutation::Truncate { at } => bytes.truncate(at % n),
        Mutation::Splice { at, bytes: more } => {
            let at = at % n;
            bytes.splice(at..at, more.iter().copied());
        }
        Mutation::Repeat { from, len } => {
            let from = from % n;
            let end = (from + len).min(n);
            let copy = bytes[from..end].to_vec();
            bytes.extend_from_slice(&copy);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_streams_are_refused_or_written_never_a_panic(
        (columns, table) in table(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let half = table.len() / 2;
        let batches = [
            record_batch(&columns, &table, 0..half),
            record_batch(&columns, &table, half..table.len()),
        ];
        let mut bytes = ipc(&arrow_schema(&columns), &batches);
        for m in &mutations {
            apply(&mut bytes, m);
        }
        let mut sink = sink_with(&columns, &[]).unwrap();
        match sink.write_arrow(bytes) {
            Ok(_) | Err(SinkError::InvalidRow { .. }) | Err(SinkError::InvalidSchema(_)) => {}
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    #[test]
    fn random_bytes_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let columns = vec![("a".to_string(), Kind::Boolean)];
        let mut sink = sink_with(&columns, &[]).unwrap();
        prop_assert!(sink.write_arrow(bytes).is_err());
    }
}
