//! Types generated from `wit/nats-sink.wit`. Every other host file names them through the
//! aliases here, so a change to the WIT's package or interface names is made in this file.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "nats-sink-component",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "nats-sink:sink/transport.connection": crate::connector::OpenConnection,
    },
});

/// The interface the host provides: what the transport takes and gives (`Batch`,
/// `ConnectConfig`, `TransportError`, ...).
pub use self::nats_sink::sink::transport;

/// The interface the component exports: options, schema, rows, and its sink resource.
pub use self::exports::nats_sink::sink::sink as encoder;

/// The component's exported interface, for calling it.
pub(crate) fn encoder_of(instance: &NatsSinkComponent) -> &encoder::Guest {
    instance.nats_sink_sink_sink()
}
