//! The component itself, driven through wasmtime with an in-memory transport: what crosses the
//! boundary in each direction, the error variants, and the component's imports.

use ::nats_sink::{ClosedAfter, Datum};
use nats_sink_tests::memory::*;
use nats_sink_tests::{component_path, options, pack};

fn schema() -> Vec<Column> {
    vec![
        Column {
            name: "id".into(),
            data_type: "integer".into(),
        },
        Column {
            name: "tags".into(),
            data_type: "varchar[]".into(),
        },
    ]
}

fn user_options() -> Vec<(String, String)> {
    options(&[
        ("connector", "nats"),
        ("server_url", "nats://a.example:4222, 127.0.0.1:4223"),
        ("subject", "orders.new"),
        ("connect_mode", "user_and_password"),
        ("username", "u"),
        ("password", "p"),
        ("flush_timeout_ms", "1234"),
    ])
}

/// A row of the schema: `id` and, unless `None`, its tags.
fn row(id: i32, tags: Option<Vec<&str>>) -> Vec<Datum> {
    let tags = tags.map_or(Datum::Null, |tags| {
        Datum::List(tags.into_iter().map(|t| Datum::Varchar(t.into())).collect())
    });
    vec![Datum::Integer(id), tags]
}

/// Rows packed as the memory harness passes them.
fn rows(rows: &[Vec<Datum>]) -> Rows {
    pack(rows)
}

fn host() -> MemoryHost {
    MemoryHost::load(&component_path()).expect("load the component")
}

/// A fresh instance with a sink opened on `user_options()`.
async fn opened(host: &MemoryHost) -> (MemoryInstance, wasmtime::component::ResourceAny) {
    let mut instance = host.instance().await.unwrap();
    let sink = instance
        .open(&user_options(), &schema())
        .await
        .unwrap()
        .unwrap();
    (instance, sink)
}

#[tokio::test]
async fn open_passes_parsed_options_to_the_transport() {
    let host = host();
    let mut instance = host.instance().await.unwrap();
    instance
        .open(&user_options(), &schema())
        .await
        .unwrap()
        .unwrap();
    let calls = instance.recorder.calls();
    let [Call::Open(config)] = calls.as_slice() else {
        panic!("{calls:?}")
    };
    assert_eq!(config.servers, vec!["a.example:4222", "127.0.0.1:4223"]);
    assert!(
        matches!(&config.auth, Auth::UserPassword(up) if up.username == "u" && up.password == "p")
    );
    assert_eq!(config.connect_timeout_ms, 5000);
    assert_eq!(config.flush_timeout_ms, 1234);
    assert!(config.create_stream.is_none(), "no allow_create_stream");
}

/// Issue 15: `allow_create_stream` reaches the transport as a stream request with its limits,
/// its wildcard subject and its deterministic name.
#[tokio::test]
async fn allow_create_stream_reaches_the_transport_as_a_stream_request() {
    let host = host();
    let mut instance = host.instance().await.unwrap();
    let options = options(&[
        ("server_url", "127.0.0.1:4222"),
        ("subject", "orders.{region}"),
        ("connect_mode", "plain"),
        ("allow_create_stream", "true"),
        ("max_bytes", "2048"),
        ("max_messages_per_subject", "3"),
        ("max_message_size", "512"),
    ]);
    let schema = vec![Column {
        name: "region".into(),
        data_type: "varchar".into(),
    }];
    instance.open(&options, &schema).await.unwrap().unwrap();
    let calls = instance.recorder.calls();
    let [Call::Open(config)] = calls.as_slice() else {
        panic!("{calls:?}")
    };
    let request = config.create_stream.as_ref().expect("a stream request");
    assert_eq!(request.subject, "orders.*");
    assert_eq!(
        request.name,
        nats_sink_guest::stream::stream_name("orders.*")
    );
    assert_eq!(
        (
            request.max_bytes,
            request.max_messages,
            request.max_messages_per_subject,
            request.max_consumers,
            request.max_message_size
        ),
        (2048, -1, 3, -1, 512)
    );
}

#[tokio::test]
async fn write_sends_one_message_per_row_in_one_publish() {
    let host = host();
    let (mut instance, sink) = opened(&host).await;
    let rows = rows(&[row(1, Some(vec!["a", "b"])), row(2, None)]);
    instance.write(sink, &rows).await.unwrap().unwrap();
    instance.flush(sink).await.unwrap().unwrap();
    let calls = instance.recorder.calls();
    assert!(
        matches!(calls.as_slice(), [Call::Open(_), Call::Publish(m), Call::Flush] if m.len() == 2),
        "{calls:?}"
    );
    let published = instance.recorder.published();
    assert_eq!(published[0].subject, "orders.new");
    assert!(published[0].headers.is_empty());
    assert_eq!(published[0].payload, br#"{"id":1,"tags":["a","b"]}"#);
    assert_eq!(published[1].payload, br#"{"id":2,"tags":null}"#);
}

#[tokio::test]
async fn rows_in_a_checkpoint_carry_message_ids_across_the_boundary() {
    let host = host();
    let (mut instance, sink) = opened(&host).await;
    instance.begin_checkpoint(sink, 42).await.unwrap();
    let both = rows(&[row(1, None), row(2, None)]);
    instance.write(sink, &both).await.unwrap().unwrap();
    // Replaying the checkpoint numbers the same rows the same way.
    instance.begin_checkpoint(sink, 42).await.unwrap();
    let first = rows(&[row(1, None)]);
    instance.write(sink, &first).await.unwrap().unwrap();
    let ids: Vec<Vec<(String, String)>> = instance
        .recorder
        .published()
        .into_iter()
        .map(|m| m.headers)
        .collect();
    let sink_id = nats_sink_guest::sink::default_sink_id(
        "orders.new",
        &nats_sink_guest::schema::Schema::parse([("id", "integer"), ("tags", "varchar[]")])
            .unwrap(),
    );
    let id = |position: u32| {
        vec![(
            "Nats-Msg-Id".to_string(),
            format!("{sink_id}:42:{position}"),
        )]
    };
    assert_eq!(ids, vec![id(0), id(1), id(0)]);
}

#[tokio::test]
async fn delivery_options_reach_the_transport_and_resolve_needs_no_connection() {
    let host = host();
    let mut instance = host.instance().await.unwrap();
    let mut opts = user_options();
    opts.extend(options(&[
        ("max_in_flight", "16"),
        ("ack_timeout_ms", "700"),
        ("retry.max_attempts", "4"),
        ("retry.max_elapsed_ms", "900"),
        ("retry.initial_backoff_ms", "5"),
        ("retry.max_backoff_ms", "50"),
    ]));
    let target = instance
        .bindings
        .resolve(&mut instance.store, &opts)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(target.subject, "orders.new");
    assert!(instance.recorder.calls().is_empty(), "resolve connected");
    let d = target.connect.delivery;
    let fields = |d: &Delivery| {
        (
            d.max_in_flight,
            d.ack_timeout_ms,
            d.max_attempts,
            d.max_elapsed_ms,
            d.initial_backoff_ms,
            d.max_backoff_ms,
        )
    };
    assert_eq!(fields(&d), (16, 700, 4, 900, 5, 50));
    instance.open(&opts, &schema()).await.unwrap().unwrap();
    let calls = instance.recorder.calls();
    assert!(
        matches!(calls.as_slice(), [Call::Open(c)] if fields(&c.delivery) == fields(&d)),
        "{calls:?}"
    );
}

#[tokio::test]
async fn invalid_options_are_one_variant_listing_every_problem_and_nothing_connects() {
    let host = host();
    let mut instance = host.instance().await.unwrap();
    let bad = options(&[
        ("server_url", "x"),
        ("subject", "a.>"),
        ("connect_mode", "plain"),
        ("pasword", "hunter2"),
    ]);
    let err = instance.open(&bad, &schema()).await.unwrap().unwrap_err();
    let SinkError::InvalidOptions(problems) = err else {
        panic!("{err:?}")
    };
    let names: Vec<_> = problems.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["pasword", "server_url", "subject"]);
    assert!(problems.iter().all(|p| !p.message.contains("hunter2")));
    assert!(
        instance.recorder.calls().is_empty(),
        "nothing may connect with invalid options"
    );
}

#[tokio::test]
async fn invalid_schema_is_its_own_variant() {
    let host = host();
    let mut instance = host.instance().await.unwrap();
    let schema = vec![Column {
        name: "id".into(),
        data_type: "int42".into(),
    }];
    let err = instance
        .open(&user_options(), &schema)
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, SinkError::InvalidSchema(m) if m.contains("column `id`: unknown type `int42`")),
        "{err:?}"
    );
}

#[tokio::test]
async fn ends_and_spans_from_the_host_are_checked_row_by_row() {
    let host = host();
    let (mut instance, sink) = opened(&host).await;
    // The second row's tag points past the batch's data ("ok": 2 bytes).
    let mut batch = rows(&[row(1, None), row(2, Some(vec!["ok"]))]);
    let last = batch.values.len() - 1;
    batch.values[last] = Value::Text(Span { start: 1, len: 100 });
    let err = instance.write(sink, &batch).await.unwrap().unwrap_err();
    let SinkError::InvalidRow(problem) = err else {
        panic!("{err:?}")
    };
    assert_eq!((problem.row, problem.column.as_str()), (1, "tags[0]"));
    assert!(
        problem.message.contains("outside the batch's 2 data bytes"),
        "{problem:?}"
    );
    assert_eq!(instance.recorder.published().len(), 1);

    let mut batch = rows(&[row(3, None)]);
    batch.ends = vec![9];
    let err = instance.write(sink, &batch).await.unwrap().unwrap_err();
    let SinkError::InvalidRow(problem) = err else {
        panic!("{err:?}")
    };
    assert_eq!((problem.row, problem.column.as_str()), (0, ""));
    assert!(problem.message.contains("ends at value 9"), "{problem:?}");
    assert_eq!(instance.recorder.published().len(), 1);
}

#[tokio::test]
async fn invalid_row_names_row_and_column_and_earlier_rows_are_published() {
    let host = host();
    let (mut instance, sink) = opened(&host).await;
    // Row 2's tags hold a bigint.
    let rows = rows(&[
        row(1, None),
        row(2, Some(vec!["ok"])),
        vec![Datum::Integer(3), Datum::List(vec![Datum::Bigint(9)])],
        row(4, None),
    ]);
    let err = instance.write(sink, &rows).await.unwrap().unwrap_err();
    let SinkError::InvalidRow(problem) = err else {
        panic!("{err:?}")
    };
    assert_eq!((problem.row, problem.column.as_str()), (2, "tags[0]"));
    assert_eq!(problem.message, "expected varchar, got bigint");
    assert_eq!(instance.recorder.published().len(), 2);
}

#[tokio::test]
async fn transport_errors_map_to_variants_and_close_the_sink() {
    let host = host();
    let (mut instance, sink) = opened(&host).await;
    instance.recorder.faults.lock().unwrap().flush =
        Some(TransportError::timeout("no ack in 1234 ms"));
    instance
        .write(sink, &rows(&[row(1, None)]))
        .await
        .unwrap()
        .unwrap();
    let err = instance.flush(sink).await.unwrap().unwrap_err();
    assert!(
        matches!(&err, SinkError::Timeout(f) if f.message == "no ack in 1234 ms" && !f.core_in_doubt),
        "{err:?}"
    );
    let err = instance
        .write(sink, &rows(&[row(2, None)]))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, SinkError::Closed(c) if matches!(c.after, ClosedAfter::Timeout)
            && c.cause.message.contains("replay from the last successful flush")),
        "{err:?}"
    );
    assert_eq!(
        instance.recorder.published().len(),
        1,
        "nothing is published after a failure"
    );

    let mut instance = host.instance().await.unwrap();
    instance.recorder.faults.lock().unwrap().open = Some(TransportError::connection("refused"));
    let err = instance
        .open(&user_options(), &schema())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, SinkError::Connection(f) if f.message == "refused"),
        "{err:?}"
    );

    let (mut instance, sink) = opened(&host).await;
    instance.recorder.faults.lock().unwrap().publish =
        Some(TransportError::publish("max payload exceeded"));
    let err = instance
        .write(sink, &rows(&[row(1, None)]))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&err, SinkError::Publish(f) if f.message == "max payload exceeded"),
        "{err:?}"
    );
}

#[tokio::test]
async fn dropping_the_sink_drops_the_connection() {
    let host = host();
    let (mut instance, sink) = opened(&host).await;
    sink.resource_drop_async(&mut instance.store).await.unwrap();
    assert!(matches!(instance.recorder.calls().last(), Some(Call::Drop)));
}

#[tokio::test]
async fn describe_and_validate_through_the_boundary() {
    let host = host();
    let mut instance = host.instance().await.unwrap();
    let described = instance
        .bindings
        .describe(&mut instance.store)
        .await
        .unwrap();
    let required: Vec<_> = described
        .iter()
        .filter(|o| o.required)
        .map(|o| o.name.as_str())
        .collect();
    assert_eq!(required, vec!["server_url", "subject", "connect_mode"]);
    assert!(described.iter().all(|o| !o.doc.is_empty()));
    let problems = instance
        .bindings
        .validate(&mut instance.store, &user_options())
        .await
        .unwrap();
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn the_component_imports_only_the_transport() {
    let host = host();
    let ty = host.component().component_type();
    let imports: Vec<String> = ty
        .imports(host.engine())
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(imports, vec!["nats:sink/transport@0.4.0"]);
    let exports: Vec<String> = ty
        .exports(host.engine())
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(exports, vec!["nats:sink/encoder@0.4.0"]);
}
