"""Build hook: the package ships the component that `just build` made (../target/nats-sink.wasm).

`NATS_SINK_COMPONENT=FILE` at build time ships another one.
"""

import os
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildWithComponent(build_py):
    def run(self) -> None:
        source = Path(os.environ.get("NATS_SINK_COMPONENT") or HERE.parent / "target" / "nats-sink.wasm")
        if not source.is_file():
            raise SystemExit(
                f"nats-sink: no component at {source}. Run `just build` in the repository first "
                "(or set NATS_SINK_COMPONENT to a built nats-sink.wasm), then install again."
            )
        shutil.copyfile(source, HERE / "src" / "nats_sink" / "nats-sink.wasm")
        super().run()


setup(cmdclass={"build_py": BuildWithComponent})
