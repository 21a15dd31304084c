//! Types generated from `wit/nats-sink.wit`. Every other host file names them through the
//! aliases here, so a change to the WIT's package or interface names is made in this file.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "connector",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "nats:sink/transport.connection": crate::connector::OpenConnection,
    },
});

/// The interface the host provides: what the transport takes and gives (`Batch`,
/// `ConnectConfig`, `TransportError`, ...).
pub use self::nats::sink::transport;

/// The interface the component exports: options, schema, rows, and its sink resource.
pub use self::exports::nats::sink::encoder;

/// The component's exported interface, for calling it.
pub(crate) fn encoder_of(instance: &World) -> &encoder::Guest {
    instance.nats_sink_encoder()
}

/// The `connector` world's bindings under a name apart from the [`crate::Connector`] trait:
/// `World::add_to_linker`, and an instance's exports.
pub use self::Connector as World;
/// The world, linked and ready to instantiate.
pub use self::ConnectorPre as WorldPre;
