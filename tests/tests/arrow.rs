//! Arrow through the component, against a real nats-server: `write_arrow` publishes the bytes
//! `write` publishes for the same rows, refuses a value that does not fit with the rows before
//! it delivered, and refuses a wrongly typed column before any row.

use std::sync::Arc;
use std::time::Duration;

use nats_sink::arrow_array::{ArrayRef, Int64Array, Int8Array, RecordBatch, StringArray};
use nats_sink::{Column, Datum, HostError, SinkError, SinkRuntime};
use nats_sink_tests::arrow::record_batch;
use nats_sink_tests::*;

const WAIT: Duration = Duration::from_secs(10);

/// Every column type, nested ones too.
fn every_type() -> Vec<Column> {
    columns(&[
        ("b", "boolean"),
        ("i16", "smallint"),
        ("i32", "integer"),
        ("i64", "bigint"),
        ("f32", "real"),
        ("f64", "double precision"),
        ("num", "numeric"),
        ("txt", "varchar"),
        ("d", "date"),
        ("t", "time"),
        ("ts", "timestamp"),
        ("tz", "timestamptz"),
        ("iv", "interval"),
        ("raw", "bytea"),
        ("doc", "jsonb"),
        ("ser", "serial"),
        ("id", "uuid"),
        ("tags", "varchar[]"),
        ("addr", "struct<zip varchar, pts integer[]>"),
    ])
}

fn every_type_rows() -> Vec<Vec<Datum>> {
    let full = |i: i64| {
        vec![
            Datum::Boolean(i % 2 == 0),
            Datum::Smallint(-7 * i as i16),
            Datum::Integer(i32::MIN + i as i32),
            Datum::Bigint(i64::MAX - i),
            Datum::Real(1.1 * i as f32),
            Datum::Double(0.1 + i as f64),
            Datum::Numeric(format!("-12.34{i}")),
            Datum::Varchar(format!("a\"b\\c\n\u{1}é{i}")),
            Datum::Date(19_000 + i as i32),
            Datum::Time(45_296_789_000 + i),
            Datum::Timestamp(1_516_991_409_453_001 + i),
            Datum::Timestamptz(1_516_991_409_453_000 - i),
            Datum::Interval {
                months: 13,
                days: -2,
                micros: 3_723_500_000 + i,
            },
            Datum::Bytea(vec![0, 1, 2, 255, i as u8]),
            Datum::Jsonb(format!(r#"{{"b":[1,2.5,null],"a":{{"x":"y{i}"}}}}"#)),
            Datum::Serial(-1 - i),
            Datum::Uuid(0x123e_4567_e89b_12d3_a456_4266_1417_4000 + i as u128),
            Datum::List(vec![Datum::Varchar("x".into()), Datum::Null]),
            Datum::Struct(vec![
                Datum::Varchar("9".into()),
                Datum::List(vec![Datum::Integer(i as i32)]),
            ]),
        ]
    };
    let mut rows: Vec<Vec<Datum>> = (0..3).map(full).collect();
    rows.push(vec![Datum::Null; every_type().len()]);
    rows.push({
        let mut partly = full(9);
        partly[17] = Datum::List(vec![]);
        partly[18] = Datum::Struct(vec![Datum::Null, Datum::Null]);
        partly
    });
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn arrow_publishes_the_bytes_write_does_for_every_type() {
    let server = NatsServer::start();
    let client = server.client().await;
    let mut sub = client.subscribe("typed").await.unwrap();
    client.flush().await.unwrap();
    let runtime = SinkRuntime::load(component_path()).unwrap();
    let schema = every_type();
    let rows = every_type_rows();
    let options = plain_options(&server, "typed");

    // Same subject and schema, so the same sink id: the message ids must match too.
    let mut by_rows = runtime.open(&options, &schema).await.unwrap();
    by_rows.begin_checkpoint(5).await.unwrap();
    by_rows.write(&pack(&rows)).await.unwrap();
    by_rows.flush().await.unwrap();
    by_rows.close().await.unwrap();

    let mut by_arrow = runtime.open(&options, &schema).await.unwrap();
    by_arrow.begin_checkpoint(5).await.unwrap();
    by_arrow
        .write_arrow(&record_batch(&schema, &rows))
        .await
        .unwrap();
    by_arrow.flush().await.unwrap();
    by_arrow.close().await.unwrap();

    let got = collect(&mut sub, 2 * rows.len(), WAIT).await;
    assert_eq!(got.len(), 2 * rows.len());
    let (written, arrowed) = got.split_at(rows.len());
    for (w, a) in written.iter().zip(arrowed) {
        assert_eq!(
            String::from_utf8_lossy(&w.payload),
            String::from_utf8_lossy(&a.payload)
        );
        let id = |m: &async_nats::Message| {
            m.headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.to_string())
        };
        assert_eq!(id(w), id(a));
        assert!(id(a).is_some_and(|id| id.contains(":5:")));
    }
    assert_eq!(
        String::from_utf8_lossy(&arrowed[3].payload),
        r#"{"addr":null,"b":null,"d":null,"doc":null,"f32":null,"f64":null,"i16":null,"i32":null,"i64":null,"id":null,"iv":null,"num":null,"raw":null,"ser":null,"t":null,"tags":null,"ts":null,"txt":null,"tz":null}"#
    );
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter(columns).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_value_out_of_range_is_refused_and_the_rows_before_it_are_delivered() {
    let server = NatsServer::start();
    let client = server.client().await;
    let mut sub = client.subscribe("ranged").await.unwrap();
    client.flush().await.unwrap();
    let runtime = SinkRuntime::load(component_path()).unwrap();
    let schema = columns(&[("n", "smallint"), ("s", "varchar")]);
    let mut sink = runtime
        .open(&plain_options(&server, "ranged"), &schema)
        .await
        .unwrap();
    let texts = |v: Vec<&str>| Arc::new(StringArray::from(v)) as ArrayRef;
    // polars and pandas hand out int64: each value must fit the smallint column.
    let first = batch(vec![
        ("n", Arc::new(Int64Array::from(vec![1, -32768])) as ArrayRef),
        ("s", texts(vec!["a", "b"])),
    ]);
    let second = batch(vec![
        (
            "n",
            Arc::new(Int64Array::from(vec![32767, 32768, 5])) as ArrayRef,
        ),
        ("s", texts(vec!["c", "d", "e"])),
    ]);
    let err = sink
        .write_arrow_batches(&[first, second])
        .await
        .unwrap_err();
    match &err {
        HostError::Sink(SinkError::InvalidRow(problem)) => {
            assert_eq!(problem.row, 3, "counted across the stream's batches");
            assert_eq!(problem.column, "n");
            assert!(
                problem
                    .message
                    .contains("32768 is outside smallint's range"),
                "{}",
                problem.message
            );
        }
        other => panic!("expected invalid-row, got {other:?}"),
    }
    sink.flush().await.unwrap();
    let got = collect(&mut sub, 4, WAIT).await;
    let payloads: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect();
    assert_eq!(
        payloads,
        [
            r#"{"n":1,"s":"a"}"#,
            r#"{"n":-32768,"s":"b"}"#,
            r#"{"n":32767,"s":"c"}"#
        ]
    );
    // The sink goes on: the next call is written.
    sink.write_arrow(&batch(vec![
        ("s", texts(vec!["f"])),
        ("n", Arc::new(Int8Array::from(vec![-1])) as ArrayRef),
    ]))
    .await
    .unwrap();
    sink.flush().await.unwrap();
    let next = collect(&mut sub, 1, WAIT).await;
    assert_eq!(
        String::from_utf8_lossy(&next[0].payload),
        r#"{"n":-1,"s":"f"}"#
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrongly_typed_or_missing_column_is_refused_before_any_row() {
    let server = NatsServer::start();
    let client = server.client().await;
    let mut sub = client.subscribe("schema").await.unwrap();
    client.flush().await.unwrap();
    let runtime = SinkRuntime::load(component_path()).unwrap();
    let schema = columns(&[("n", "integer"), ("s", "varchar")]);
    let mut sink = runtime
        .open(&plain_options(&server, "schema"), &schema)
        .await
        .unwrap();
    let wrong = batch(vec![
        ("n", Arc::new(StringArray::from(vec!["1"])) as ArrayRef),
        ("s", Arc::new(StringArray::from(vec!["a"])) as ArrayRef),
    ]);
    let err = sink.write_arrow(&wrong).await.unwrap_err();
    assert!(
        matches!(&err, HostError::Sink(SinkError::InvalidSchema(m))
            if m.contains("column `n`") && m.contains("integer") && m.contains("Utf8")),
        "{err:?}"
    );
    let missing = batch(vec![("n", Arc::new(Int64Array::from(vec![1])) as ArrayRef)]);
    let err = sink.write_arrow(&missing).await.unwrap_err();
    assert!(
        matches!(&err, HostError::Sink(SinkError::InvalidSchema(m)) if m.contains("column `s`")),
        "{err:?}"
    );
    sink.flush().await.unwrap();
    // A marker row shows nothing was published before it.
    sink.write_arrow(&batch(vec![
        ("n", Arc::new(Int64Array::from(vec![7])) as ArrayRef),
        ("s", Arc::new(StringArray::from(vec!["ok"])) as ArrayRef),
    ]))
    .await
    .unwrap();
    sink.flush().await.unwrap();
    let got = collect(&mut sub, 1, WAIT).await;
    assert_eq!(
        String::from_utf8_lossy(&got[0].payload),
        r#"{"n":7,"s":"ok"}"#
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_stream_is_an_error_not_a_trap() {
    let server = NatsServer::start();
    let runtime = SinkRuntime::load(component_path()).unwrap();
    let schema = columns(&[("n", "integer")]);
    let mut sink = runtime
        .open(&plain_options(&server, "malformed"), &schema)
        .await
        .unwrap();
    let good = nats_sink::arrow::ipc_stream(&[batch(vec![(
        "n",
        Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef,
    )])])
    .unwrap();
    for cut in [0, 3, 9, good.len() / 2, good.len() - 9] {
        let err = sink.write_arrow_ipc(&good[..cut]).await.unwrap_err();
        assert!(
            matches!(&err, HostError::Sink(SinkError::InvalidRow(p)) if p.column.is_empty()),
            "cut at {cut}: {err:?}"
        );
    }
    // Still open: no trap closed it. The whole stream is written, and its rows counted.
    assert_eq!(sink.write_arrow_ipc(&good).await.unwrap(), 3);
    sink.flush().await.unwrap();
}
