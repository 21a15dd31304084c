//! wasmtime's pooling allocator (`RuntimeConfig::pooled_instances`, issue 21): sinks in pooled
//! slots deliver to a real `nats-server` like any other; one past the count is refused with an
//! instantiation error, and a closed sink's slot serves the next.

use std::time::Duration;

use nats_sink::{Datum, HostError, RuntimeConfig, RuntimeErrorKind, SinkRuntime};
use nats_sink_tests::*;

const SLOTS: u32 = 3;

fn pooled_runtime() -> SinkRuntime {
    let config = RuntimeConfig {
        pooled_instances: Some(SLOTS),
        ..RuntimeConfig::default()
    };
    SinkRuntime::load_with(component_path(), &config).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn pooled_sinks_deliver_and_a_sink_past_the_pool_is_refused() {
    let server = NatsServer::start();
    let watcher = server.client().await;
    let mut arrivals = watcher.subscribe("pooled").await.unwrap();
    watcher.flush().await.unwrap();
    let runtime = pooled_runtime();
    let schema = columns(&[("slot", "integer")]);
    let options = plain_options(&server, "pooled");

    let mut sinks = Vec::new();
    for slot in 0..SLOTS as i32 {
        let mut sink = runtime.open(&options, &schema).await.unwrap();
        sink.write(&pack(&[vec![Datum::Integer(slot)]]))
            .await
            .unwrap();
        sink.flush().await.unwrap();
        sinks.push(sink);
    }
    let received = collect(&mut arrivals, SLOTS as usize, Duration::from_secs(10)).await;
    let payloads: Vec<String> = received
        .iter()
        .map(|m| String::from_utf8(m.payload.to_vec()).unwrap())
        .collect();
    assert_eq!(
        payloads,
        [r#"{"slot":0}"#, r#"{"slot":1}"#, r#"{"slot":2}"#]
    );

    match runtime.open(&options, &schema).await {
        Err(HostError::Runtime(e)) => {
            assert_eq!(e.kind(), RuntimeErrorKind::Instantiate, "{e}");
            let why = std::error::Error::source(&e).map(|s| format!("{s:#}"));
            assert!(why.is_some_and(|w| w.contains("concurrent")), "{e}");
        }
        Err(other) => panic!("a sink past the pool: {other}"),
        Ok(_) => panic!("a sink past the pool of {SLOTS} opened"),
    }

    // A closed sink's slot serves the next one.
    sinks.pop().unwrap().close().await.unwrap();
    let mut next = runtime.open(&options, &schema).await.unwrap();
    next.write(&pack(&[vec![Datum::Integer(3)]])).await.unwrap();
    next.flush().await.unwrap();
    let received = collect(&mut arrivals, 1, Duration::from_secs(10)).await;
    assert_eq!(received[0].payload.as_ref(), br#"{"slot":3}"#);
}
