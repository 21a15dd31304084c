#!/usr/bin/env bash
# Build the guest as a wasm32-unknown-unknown core module, then wrap it into a component at
# target/nats-sink.wasm; with `--hostile`, also the hostile test guest (tests/hostile) at
# target/hostile.wasm, which only the tests use.
# Uses rustup's wasm32 target where installed; otherwise Debian's rustc-web with a std built
# from source (see CONTRIBUTING.md, "Building the guest").
set -euo pipefail
cd "$(dirname "$0")/.."
out_dir=target/guest

# build_core PACKAGE: the package's core module, in $out_dir.
build_core() {
  if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    cargo build -q -p "$1" --profile guest --target wasm32-unknown-unknown --target-dir "$out_dir"
  elif [ -x /usr/bin/rustc ] && [ -d /usr/lib/rustlib/src/rust/library ]; then
    PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
      /usr/bin/cargo build -q -p "$1" --profile guest --target wasm32-unknown-unknown \
      --target-dir "$out_dir" -Zbuild-std=std,panic_abort
  else
    echo "build-guest: no wasm32 toolchain; run ./setup.sh first" >&2
    exit 1
  fi
}

# componentize CORE OUT: the core module $core_dir/CORE.wasm as the component OUT. The tool is
# built in the dev profile, whose dependencies are optimized and shared with the host's build.
core_dir=$out_dir/wasm32-unknown-unknown/guest
componentize() {
  cargo run -q -p componentize -- "$core_dir/$1.wasm" "$2"
}

build_core nats-sink-guest
componentize nats_sink_guest target/nats-sink.wasm
if [ "${1:-}" = --hostile ]; then
  build_core nats-sink-hostile
  componentize nats_sink_hostile target/hostile.wasm
fi
