//! Encoding alone, natively and in wasm, with nothing published: the boundary and the encoder.

use super::*;

/// One `write` crossing with no rows is timed over this many calls.
pub(crate) const EMPTY_CALLS: usize = 20_000;

/// Encoding alone, each measured once per round: the native sink and the component over
/// transports that drop what they get, and one `write` crossing with no rows.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) enum EncodeMode {
    Native,
    Wasm,
    /// The native sink fed each batch as one Arrow IPC stream.
    NativeArrow,
    /// The component fed each batch as one Arrow IPC stream.
    WasmArrow,
    EmptyNative,
    EmptyWasm,
}

pub(crate) const ENCODE_MODES: [EncodeMode; 6] = [
    EncodeMode::Native,
    EncodeMode::Wasm,
    EncodeMode::NativeArrow,
    EncodeMode::WasmArrow,
    EncodeMode::EmptyNative,
    EncodeMode::EmptyWasm,
];

/// The rows of a dataset in batches of 1,024, in the shapes both encoders take.
pub(crate) struct EncodeInput {
    pub(crate) guest_rows: Vec<guest::Rows>,
    pub(crate) memory_rows: Vec<memory::Rows>,
    pub(crate) columns: Vec<memory::Column>,
    /// Each batch as one Arrow IPC stream.
    pub(crate) ipc: Vec<Vec<u8>>,
}

impl EncodeInput {
    pub(crate) fn new(data: &Dataset) -> EncodeInput {
        let packed: Vec<Rows> = data.rows.chunks(1024).map(pack).collect();
        EncodeInput {
            guest_rows: packed.iter().map(to_guest_rows).collect(),
            memory_rows: packed.clone(),
            ipc: data
                .rows
                .chunks(1024)
                .map(|rows| {
                    nats_sink::arrow::ipc_stream(&[record_batch(&data.columns, rows)])
                        .expect("the dataset as Arrow")
                })
                .collect(),
            columns: data
                .columns
                .iter()
                .map(|c| memory::Column {
                    name: c.name.clone(),
                    data_type: c.data_type.clone(),
                })
                .collect(),
        }
    }
}

/// Seconds for one run of `mode` (for the empty writes, seconds per call).
pub(crate) fn encode_run(
    rt: &tokio::runtime::Runtime,
    host: &MemoryHost,
    data: &Dataset,
    input: &EncodeInput,
    mode: EncodeMode,
) -> f64 {
    match mode {
        EncodeMode::Native => {
            let mut sink = native_sink(&data.columns, &[], Discard::default());
            let started = Instant::now();
            for rows in &input.guest_rows {
                sink.write(rows).unwrap();
            }
            let seconds = started.elapsed().as_secs_f64();
            assert_eq!(sink.transport().messages as usize, data.rows.len());
            seconds
        }
        EncodeMode::NativeArrow => {
            let mut sink = native_sink(&data.columns, &[], Discard::default());
            let started = Instant::now();
            for ipc in &input.ipc {
                // The copy stands for the one into the component's memory.
                sink.write_arrow(ipc.clone()).unwrap();
            }
            let seconds = started.elapsed().as_secs_f64();
            assert_eq!(sink.transport().messages as usize, data.rows.len());
            seconds
        }
        EncodeMode::EmptyNative => {
            let mut sink = native_sink(&data.columns, &[], Discard::default());
            let started = Instant::now();
            for _ in 0..EMPTY_CALLS {
                sink.write(&guest::Rows::new()).unwrap();
            }
            started.elapsed().as_secs_f64() / EMPTY_CALLS as f64
        }
        EncodeMode::Wasm | EncodeMode::WasmArrow | EncodeMode::EmptyWasm => rt.block_on(async {
            let mut instance = host.instance().await.unwrap();
            instance.recorder.discard.store(true, Ordering::Relaxed);
            let opts = options("127.0.0.1:4222", "bench", &[]);
            let sink = instance.open(&opts, &input.columns).await.unwrap().unwrap();
            if mode == EncodeMode::Wasm {
                let started = Instant::now();
                for rows in &input.memory_rows {
                    instance.write(sink, rows).await.unwrap().unwrap();
                }
                let seconds = started.elapsed().as_secs_f64();
                assert_eq!(
                    instance.recorder.messages.load(Ordering::Relaxed) as usize,
                    data.rows.len()
                );
                seconds
            } else if mode == EncodeMode::WasmArrow {
                let started = Instant::now();
                for ipc in &input.ipc {
                    instance.write_arrow(sink, ipc).await.unwrap().unwrap();
                }
                let seconds = started.elapsed().as_secs_f64();
                assert_eq!(
                    instance.recorder.messages.load(Ordering::Relaxed) as usize,
                    data.rows.len()
                );
                seconds
            } else {
                let empty = Rows::new();
                let started = Instant::now();
                for _ in 0..EMPTY_CALLS {
                    instance.write(sink, &empty).await.unwrap().unwrap();
                }
                started.elapsed().as_secs_f64() / EMPTY_CALLS as f64
            }
        }),
    }
}
