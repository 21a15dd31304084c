//! An instance's exports, called directly with its store: the component's `encoder`
//! interface behind host-owned methods, so the generated bindings (and the WIT's package,
//! interface and world names) stay private.

use wasmtime::component::ResourceAny;
use wasmtime::Store;

use crate::bindings::encoder::{Column, OptionInfo, OptionProblem, Rows, SinkError, Target};
use crate::bindings::transport::PackedBytes;
use crate::bindings::{encoder_of, World};
use crate::runtime::SinkState;

/// The component's exports, for [`crate::ComponentInstance`]. Each call is the WIT function
/// of that name; the outer `Result` is wasmtime's (a trap, a limit), the inner the guest's.
pub struct Exports(pub(crate) World);

impl Exports {
    /// `describe`: every option the sink understands.
    pub async fn describe(
        &self,
        store: &mut Store<SinkState>,
    ) -> wasmtime::Result<Vec<OptionInfo>> {
        encoder_of(&self.0).call_describe(store).await
    }

    /// `validate`: every problem with these options.
    pub async fn validate(
        &self,
        store: &mut Store<SinkState>,
        options: &[(String, String)],
    ) -> wasmtime::Result<Vec<OptionProblem>> {
        encoder_of(&self.0).call_validate(store, options).await
    }

    /// `resolve`: where valid options point, without connecting.
    pub async fn resolve(
        &self,
        store: &mut Store<SinkState>,
        options: &[(String, String)],
    ) -> wasmtime::Result<Result<Target, SinkError>> {
        encoder_of(&self.0).call_resolve(store, options).await
    }

    /// `sink.open`: a sink resource, connected.
    pub async fn open(
        &self,
        store: &mut Store<SinkState>,
        options: &[(String, String)],
        schema: &[Column],
    ) -> wasmtime::Result<Result<ResourceAny, SinkError>> {
        encoder_of(&self.0)
            .sink()
            .call_open(store, options, schema)
            .await
    }

    /// `sink.begin-checkpoint`.
    pub async fn begin_checkpoint(
        &self,
        store: &mut Store<SinkState>,
        sink: ResourceAny,
        id: u64,
    ) -> wasmtime::Result<()> {
        encoder_of(&self.0)
            .sink()
            .call_begin_checkpoint(store, sink, id)
            .await
    }

    /// `sink.write`.
    pub async fn write(
        &self,
        store: &mut Store<SinkState>,
        sink: ResourceAny,
        rows: &Rows,
    ) -> wasmtime::Result<Result<(), SinkError>> {
        encoder_of(&self.0)
            .sink()
            .call_write(store, sink, rows)
            .await
    }

    /// `sink.write-arrow`, of a stream packed by [`crate::arrow::packed_stream`].
    pub async fn write_arrow(
        &self,
        store: &mut Store<SinkState>,
        sink: ResourceAny,
        ipc: &PackedBytes,
    ) -> wasmtime::Result<Result<u32, SinkError>> {
        encoder_of(&self.0)
            .sink()
            .call_write_arrow(store, sink, ipc)
            .await
    }

    /// `sink.flush`.
    pub async fn flush(
        &self,
        store: &mut Store<SinkState>,
        sink: ResourceAny,
    ) -> wasmtime::Result<Result<(), SinkError>> {
        encoder_of(&self.0).sink().call_flush(store, sink).await
    }
}
