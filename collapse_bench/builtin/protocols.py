"""Built-in protocols: the TOML files shipped in ``collapse_bench/protocols/``."""

from __future__ import annotations

from pathlib import Path

from collapse_bench import hookimpl

PROTOCOL_DIR = Path(__file__).resolve().parent.parent / "protocols"


@hookimpl
def register_protocols(register):
    for path in sorted(PROTOCOL_DIR.glob("*.toml")):
        register(path)
