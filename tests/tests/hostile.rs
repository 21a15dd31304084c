//! The host against guests that misbehave: a real component (`tests/hostile`, built by
//! `scripts/build-guest.sh`) that loops, allocates without end or hands over invalid messages,
//! and components made here from the WIT (every export traps; an import the host lacks).
//! Each must end in a clear error naming what was wrong, with the host and other sinks intact.

use std::time::{Duration, Instant};

use futures::StreamExt as _;

use nats_sink::{Column, Datum, HostError, Rows, RuntimeErrorKind, SinkError, SinkRuntime};
use nats_sink_tests::*;

const WAIT: Duration = Duration::from_secs(10);

fn schema() -> Vec<Column> {
    columns(&[("id", "integer")])
}

fn one_row() -> Rows {
    pack(&[vec![Datum::Integer(1)]])
}

fn hostile_options(server: &NatsServer, behaviour: &str) -> Vec<(String, String)> {
    options(&[("server_url", &server.url()), ("behaviour", behaviour)])
}

fn hostile_runtime() -> SinkRuntime {
    SinkRuntime::load(hostile_component_path()).expect("load the hostile component")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_looping_in_write_is_stopped_by_the_cpu_limit_and_others_go_on() {
    let server = NatsServer::start();
    let runtime = hostile_runtime().with_cpu_limit(Duration::from_millis(200));
    let mut looping = runtime
        .open(&hostile_options(&server, "loop-in-write"), &schema())
        .await
        .unwrap();
    // A well-behaved sink in the same process, on the same tokio runtime.
    let good_runtime = SinkRuntime::load(component_path()).unwrap();
    let mut good = good_runtime
        .open(&plain_options(&server, "good"), &schema())
        .await
        .unwrap();
    let client = server.client().await;
    let mut sub = client.subscribe("good").await.unwrap();
    client.flush().await.unwrap();

    let started = Instant::now();
    let row = one_row();
    let (looped, delivered) = tokio::join!(looping.write(&row), async {
        good.write(&one_row()).await?;
        good.flush().await
    });
    let err = looped.unwrap_err();
    assert!(
        matches!(&err, HostError::Runtime(e) if e.kind() == RuntimeErrorKind::CpuLimit),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("write exceeded the sink's CPU limit of 200 ms per call"),
        "{err}"
    );
    assert!(started.elapsed() < WAIT, "took {:?}", started.elapsed());
    delivered.unwrap();
    assert_eq!(collect(&mut sub, 1, WAIT).await.len(), 1);
    assert!(matches!(
        looping.flush().await,
        Err(HostError::Sink(SinkError::Closed(_)))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_allocating_without_end_hits_the_memory_limit() {
    let server = NatsServer::start();
    let runtime = hostile_runtime().with_memory_limit(16 << 20);
    let mut sink = runtime
        .open(&hostile_options(&server, "alloc-in-write"), &schema())
        .await
        .unwrap();
    let err = sink.write(&one_row()).await.unwrap_err();
    assert!(
        matches!(&err, HostError::Runtime(e) if e.kind() == RuntimeErrorKind::MemoryLimit),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("write exceeded the sink's memory limit of 16 MiB"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_messages_from_a_guest_are_refused_with_the_reason() {
    let server = NatsServer::start();
    let client = server.client().await;
    // Not `>`: that would answer the sink's JetStream lookups and leave them waiting.
    let mut everything = futures::stream::select_all([
        client.subscribe("hostile").await.unwrap(),
        client.subscribe("other").await.unwrap(),
        client.subscribe("orders.>").await.unwrap(),
        client.subscribe("hostile.>").await.unwrap(),
        client.subscribe("$KV.>").await.unwrap(),
    ]);
    client.flush().await.unwrap();
    let runtime = hostile_runtime();
    for (behaviour, expected) in [
        (
            "empty-subject",
            "invalid message: subject \"\" must not be empty",
        ),
        ("wildcard-subject", "contains a wildcard"),
        (
            "bad-header",
            "X-Smuggle's value must not contain a line break",
        ),
        // Issue 26: the host's own checks refuse what the guest's refuse.
        (
            "control-subject",
            "must not contain a control character (found U+0000)",
        ),
        ("kv-subject", "is under `$KV.`"),
        (
            "control-header",
            "X-Id's value must not contain a control character (found U+0000)",
        ),
        (
            "oversized-payload",
            "Payload size limit of 1048576 exceeded",
        ),
        (
            "span-outside",
            "its payload span 7+4294967295 is outside the batch's 9 bytes",
        ),
        (
            "header-index-outside",
            "header name index 9 outside the batch",
        ),
    ] {
        let mut sink = runtime
            .open(&hostile_options(&server, behaviour), &schema())
            .await
            .unwrap();
        let err = sink.write(&one_row()).await.unwrap_err();
        assert!(
            matches!(err, HostError::Sink(SinkError::Publish(_))),
            "{behaviour}: {err:?}"
        );
        assert!(err.to_string().contains(expected), "{behaviour}: {err}");
    }
    // Nothing reached any subject, the smuggled `PUB other` line included.
    let stray = tokio::time::timeout(Duration::from_millis(300), everything.next()).await;
    assert!(stray.is_err(), "a message got through: {stray:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_that_traps_in_open_is_an_error_not_a_crash() {
    let runtime = SinkRuntime::from_bytes(&trapping_component()).unwrap();
    let err = match runtime.open(&options(&[]), &schema()).await {
        Ok(_) => panic!("a trapping open opened"),
        Err(e) => e,
    };
    assert!(
        matches!(&err, HostError::Runtime(e) if e.kind() == RuntimeErrorKind::Trap),
        "{err:?}"
    );
    assert!(err.to_string().contains("open"), "{err}");
}

/// Issue 26: a trap in one call leaves the runtime answering the next: each call gets a fresh
/// instance, so neither `describe` nor another `open` meets the trapped one.
#[tokio::test(flavor = "multi_thread")]
async fn after_a_trap_in_open_the_same_runtime_still_answers() {
    let server = NatsServer::start();
    let runtime = hostile_runtime();
    let err = match runtime
        .open(&hostile_options(&server, "trap-in-open"), &schema())
        .await
    {
        Ok(_) => panic!("a trapping open opened"),
        Err(e) => e,
    };
    assert!(
        matches!(&err, HostError::Runtime(e) if e.kind() == RuntimeErrorKind::Trap),
        "{err:?}"
    );
    runtime.describe().await.expect("describe after the trap");
    let mut sink = runtime
        .open(&hostile_options(&server, "empty-subject"), &schema())
        .await
        .expect("open after the trap");
    // The new sink is a live instance: its write reaches the host's checks.
    let refused = sink.write(&one_row()).await.unwrap_err();
    assert!(
        refused.to_string().contains("must not be empty"),
        "{refused}"
    );
    sink.close().await.unwrap();
}

#[test]
fn a_component_importing_what_the_host_lacks_is_refused_at_load() {
    let err = match SinkRuntime::from_bytes(&component_with_extra_import()) {
        Ok(_) => panic!("loaded a component with an unknown import"),
        Err(e) => e,
    };
    assert!(
        matches!(&err, HostError::Runtime(e) if e.kind() == RuntimeErrorKind::Link),
        "{err:?}"
    );
    // What the host was doing, then why (the error's source).
    let message = format!("{:#}", anyhow::Error::from(err));
    assert!(
        message.contains("does not fit the nats-sink world"),
        "{message}"
    );
    assert!(message.contains("hostile:extra/clock"), "{message}");
}

/// An endless file (or a huge one) is refused after a bounded read, not read into memory.
#[test]
fn an_endless_component_file_is_refused_after_a_bounded_read() {
    let err = match SinkRuntime::load("/dev/zero") {
        Ok(_) => panic!("loaded /dev/zero"),
        Err(e) => e,
    };
    assert!(
        matches!(&err, HostError::Runtime(e) if e.kind() == RuntimeErrorKind::Load),
        "{err:?}"
    );
    let message = format!("{:#}", anyhow::Error::from(err));
    assert!(message.contains("larger than 64 MiB"), "{message}");
}

#[test]
fn bytes_that_are_not_a_component_are_refused_at_load() {
    for bytes in [&b""[..], b"\0asm\x01\0\0\0", b"not wasm at all"] {
        let err = match SinkRuntime::from_bytes(bytes) {
            Ok(_) => panic!("loaded {bytes:?}"),
            Err(e) => e,
        };
        assert!(
            matches!(&err, HostError::Runtime(e) if e.kind() == RuntimeErrorKind::Compile),
            "{err:?}"
        );
        assert!(err.to_string().contains("compiling the component"), "{err}");
    }
}
