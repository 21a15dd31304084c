//! The Arrow path against the `rows` path: random schemas and rows, each value in a random
//! Arrow form its column takes, written both ways through the native guest. Same outcome,
//! same messages, byte for byte (and where a value is refused, the same row, column and
//! reason).

mod arrow_support;

use arrow_support::*;
use nats_sink_guest::sink::SinkError;
use proptest::prelude::*;

/// Both paths' outcome and messages for `table`, the Arrow rows split into record batches
/// at `cuts`.
fn both_ways(
    columns: &[(String, Kind)],
    table: &[Vec<Cell>],
    cuts: &[usize],
    options: &[(&str, &str)],
) -> (
    (Result<(), SinkError>, Vec<nats_sink_guest::batch::Unpacked>),
    (Result<(), SinkError>, Vec<nats_sink_guest::batch::Unpacked>),
) {
    let mut by_rows = sink_with(columns, options).unwrap();
    let written = by_rows.write(&to_rows(columns, table));

    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (table.len() + 1)).collect();
    bounds.push(0);
    bounds.push(table.len());
    bounds.sort_unstable();
    bounds.dedup();
    let batches: Vec<_> = bounds
        .windows(2)
        .map(|w| record_batch(columns, table, w[0]..w[1]))
        .collect();
    let mut by_arrow = sink_with(columns, options).unwrap();
    let arrowed = by_arrow.write_arrow(ipc(&arrow_schema(columns), &batches));
    if let Ok(rows) = &arrowed {
        assert_eq!(*rows as usize, table.len(), "the rows counted");
    }
    let arrowed = arrowed.map(|_| ());
    (
        (written, by_rows.transport().published.clone()),
        (arrowed, by_arrow.transport().published.clone()),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arrow_and_rows_give_the_same_messages(
        (columns, table) in table(),
        cuts in prop::collection::vec(any::<usize>(), 0..3),
        schema_order in any::<bool>(),
    ) {
        let options: &[(&str, &str)] = if schema_order {
            &[("json.key_order", "schema"), ("jsonb.handling.mode", "dynamic")]
        } else {
            &[]
        };
        let (rows, arrow) = both_ways(&columns, &table, &cuts, options);
        prop_assert_eq!(&rows.0, &arrow.0);
        prop_assert_eq!(rows.1.len(), arrow.1.len());
        for (a, b) in rows.1.iter().zip(&arrow.1) {
            prop_assert_eq!(
                String::from_utf8_lossy(&a.payload),
                String::from_utf8_lossy(&b.payload)
            );
            prop_assert_eq!(a, b);
        }
    }
}

/// The string modes change every writer they touch, on both paths alike.
#[test]
fn handling_modes_apply_to_arrow_as_to_rows() {
    use arrow_schema::TimeUnit;
    let columns = vec![
        ("d".to_string(), Kind::Date(true)),
        ("t".to_string(), Kind::Time(TimeUnit::Nanosecond)),
        ("ts".to_string(), Kind::Timestamp(TimeUnit::Millisecond)),
        ("tz".to_string(), Kind::Timestamptz(TimeUnit::Second)),
    ];
    let table = vec![vec![
        Some(L::Days(-1)),
        Some(L::Micros(3_723_000_045)),
        Some(L::Micros(1_516_991_409_453_000)),
        Some(L::Micros(1_516_991_409_000_000)),
    ]];
    let options = [
        ("date.handling.mode", "string"),
        ("time.handling.mode", "string"),
        ("timestamp.handling.mode", "string"),
        ("timestamptz.handling.mode", "utc_string"),
    ];
    let (rows, arrow) = both_ways(&columns, &table, &[], &options);
    assert_eq!(rows.0, Ok(()));
    assert_eq!(rows, arrow);
    assert_eq!(
        String::from_utf8_lossy(&arrow.1[0].payload),
        r#"{"d":"1969-12-31","t":"01:02:03.000045","ts":"2018-01-26 18:30:09.453000","tz":"2018-01-26T18:30:09.000000Z"}"#
    );
}

/// Subjects and headers filled from a column come out the same from Arrow.
#[test]
fn templates_fill_from_arrow_columns() {
    let columns = vec![
        ("region".to_string(), Kind::Varchar(TextForm::View)),
        ("n".to_string(), Kind::Int(IntSink::Integer, IntForm::U8)),
        ("id".to_string(), Kind::Uuid(true)),
    ];
    let table = vec![
        vec![
            Some(L::Text("eu".into())),
            Some(L::Int(7)),
            Some(L::Uuid(1)),
        ],
        vec![
            Some(L::Text("us".into())),
            Some(L::Int(8)),
            Some(L::Uuid(u128::MAX)),
        ],
        vec![Some(L::Text("a b".into())), Some(L::Int(9)), None],
        vec![Some(L::Text("ap".into())), Some(L::Int(10)), None],
    ];
    let options = [("subject", "orders.{region}.{n}"), ("headers.X-Id", "{id}")];
    let (rows, arrow) = both_ways(&columns, &table, &[1], &options);
    assert!(
        matches!(&rows.0, Err(SinkError::InvalidRow { row: 2, .. })),
        "{:?}",
        rows.0
    );
    assert_eq!(rows, arrow);
    assert_eq!(arrow.1[0].subject, "orders.eu.7");
    assert_eq!(
        arrow.1[0].headers[0],
        (
            "X-Id".to_string(),
            "00000000-0000-0000-0000-000000000001".to_string()
        )
    );
}
