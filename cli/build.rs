//! Embeds the built component (`target/nats-sink.wasm`, from `./scripts/build-guest.sh`) in
//! the CLI, so that a copied or installed `nats-sink` runs from any directory.
//! `NATS_SINK_EMBED=FILE` embeds another file. Without a component the CLI still builds, and
//! then needs `--component` or `$NATS_SINK_COMPONENT` at run time.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=NATS_SINK_EMBED");
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let component = std::env::var_os("NATS_SINK_EMBED")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir.join("../target/nats-sink.wasm"));
    println!("cargo:rerun-if-changed={}", component.display());
    let embedded = match component.canonicalize() {
        Ok(path) => format!("Some(include_bytes!({:?}))", path.display().to_string()),
        Err(_) => {
            println!(
                "cargo:warning=no component at {}: this nats-sink will need --component \
                 (run ./scripts/build-guest.sh before building it to embed one)",
                component.display()
            );
            "None".to_string()
        }
    };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    std::fs::write(out.join("embedded_component.rs"), embedded).expect("writing to OUT_DIR");
}
