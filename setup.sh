#!/usr/bin/env bash
# Installs what nats-sink needs on a fresh Debian 12 machine; safe to run again.
#  - just (from PyPI's rust-just wheel; falls back to `cargo install just`)
#  - nats-server (Debian, v2.9 with JetStream)
#  - a wasm32 toolchain for the guest: rustup's wasm32-unknown-unknown target where it is
#    installed, otherwise Debian's rustc-web with its std source (built with -Zbuild-std)
#  - Node.js and the third host's packages (js/: jco, the nats client and apache-arrow, from
#    npm, exactly as js/package-lock.json pins them)
#  - the Python host's packages (python/requirements-test.txt: wasmtime, nats-py, pytest)
#  - Java 17 (Debian's openjdk-17-jre-headless) and the pinned pyspark for nats_sink.spark
#    (python/requirements-spark.txt)
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
command -v nats-server >/dev/null 2>&1 || need_apt+=(nats-server)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  [ -x /usr/bin/rustc ] && [ -d /usr/lib/rustlib/src/rust/library ] || need_apt+=(rustc-web cargo-web rust-web-src rust-web-llvm)
  command -v ld.lld-22 >/dev/null 2>&1 || [ -x /usr/lib/llvm-22/bin/ld.lld ] || need_apt+=(lld-22)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "setup: installing ${need_apt[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need_apt[@]}"
fi

if ! command -v just >/dev/null 2>&1; then
  echo "setup: installing just"
  python3 -m pip install -q rust-just 2>/dev/null || cargo install --locked just
  hash -r
fi
command -v just >/dev/null 2>&1 || { echo "setup: just is installed but not on PATH" >&2; exit 1; }

# The lint gate (`just lint`) needs rustfmt and clippy beside the toolchain.
for tool in fmt clippy; do
  cargo "$tool" --version >/dev/null 2>&1 || rustup component add "$(
    [ "$tool" = fmt ] && echo rustfmt || echo clippy)"
done

if [ ! -x js/node_modules/.bin/jco ] || [ js/package-lock.json -nt js/node_modules/.package-lock.json ]; then
  echo "setup: installing js/'s npm packages"
  # `npm ci` installs exactly the committed lock and never rewrites it.
  (cd js && npm ci --no-audit --no-fund --loglevel=error)
fi
# The Python host (python/) and its tests, then Spark's: each pin file's packages, installed only
# when one of them differs from what is installed (pyspark's sdist is ~430 MB).
install_pins() {
  if ! python3 - "$1" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
pins = [l.split("==") for l in open(sys.argv[1]) if "==" in l and not l.startswith("#")]
sys.exit(any(version(n.strip()) != v.strip() for n, v in pins))
PY
  then
    echo "setup: installing $2"
    python3 -m pip install -q --disable-pip-version-check -r "$1"
  fi
}
install_pins python/requirements-test.txt "the Python host's packages"
install_pins python/requirements-spark.txt "pyspark and what nats_sink.spark needs"
echo "setup: ready ($(just --version), $(nats-server --version), node $(node --version), $(java -version 2>&1 | head -1))"
