//! Where the built artifacts and repository files are: the component, the hostile guest, the CLI.

use std::path::{Path, PathBuf};

/// The workspace's `target/` directory.
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// The component `just build` produces; its absence is a failure, not a skip.
pub fn component_path() -> PathBuf {
    let path = std::env::var_os("NATS_SINK_COMPONENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("nats-sink.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `just build` (or `just test`) first",
        path.display()
    );
    path
}

/// The hostile test guest (`tests/hostile`), built by `./scripts/build-guest.sh --hostile`
/// (which `just test` runs).
pub fn hostile_component_path() -> PathBuf {
    let path = target_dir().join("hostile.wasm");
    assert!(
        path.exists(),
        "{} is missing: run `just test` (or `./scripts/build-guest.sh --hostile`) first",
        path.display()
    );
    path
}

/// The `nats-sink` CLI built next to this test binary (`target/debug/nats-sink`).
pub fn cli_path() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = profile_dir.join("nats-sink");
    assert!(
        path.exists(),
        "{} is missing: run `just test`, which builds it",
        path.display()
    );
    path
}

/// A repository file, such as `examples/all_types.jsonl`.
pub fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}
