"""Where compiled components are kept between processes, as the CLI keeps them.

Compiling the component takes about a second; every new process (a Spark worker, a short
script) paid it again. wasmtime's own cache is used, in the CLI's directory: `$NATS_SINK_CACHE`,
else `$XDG_CACHE_HOME/nats-sink`, else `~/.cache/nats-sink`; `NATS_SINK_NO_CACHE=1` (or `true`, `yes`) turns it off.
The cache directory must be trusted like the component itself: wasmtime loads the code it holds.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Optional

from wasmtime import Config, WasmtimeError

_log = logging.getLogger(__name__)


def cache_dir() -> Optional[Path]:
    """The directory, or None when caching is off or no place is known."""
    if os.environ.get("NATS_SINK_NO_CACHE", "").strip().lower() in ("1", "true", "yes"):
        return None
    for name, below in (("NATS_SINK_CACHE", ()), ("XDG_CACHE_HOME", ("nats-sink",)), ("HOME", (".cache", "nats-sink"))):
        value = os.environ.get(name)
        if value:
            return Path(value, *below)
    return None


def _settings_file(directory: Path) -> Path:
    """wasmtime reads its cache settings from a TOML file: one beside the cache, written once."""
    directory.mkdir(parents=True, exist_ok=True)
    settings = directory / "wasmtime-cache.toml"
    text = f'[cache]\ndirectory = "{_toml_string(str(directory / "wasmtime"))}"\n'
    if not settings.is_file() or settings.read_text() != text:
        # Written aside and renamed, so a concurrent process never reads half of it.
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".wasmtime-cache.", suffix=".toml")
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(temporary, settings)
    return settings


def _toml_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def engine_config() -> Config:
    """A Config with the compile cache when it can be set up; without it otherwise (logged)."""
    config = Config()
    directory = cache_dir()
    if directory is None:
        return config
    try:
        config.cache = str(_settings_file(directory))
    except (OSError, WasmtimeError) as e:
        _log.info("nats-sink: compiling without a cache (%s: %s)", directory, e)
        return Config()
    return config
