"""An unreachable Hugging Face hub is refused at once, in one line, not after half a minute of retries.

The hub is pointed (``HF_ENDPOINT``) at a localhost port nobody listens on, so the checks hold
with or without a network, and ``HF_HUB_OFFLINE`` (which the suite sets) is taken away.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLI = "from collapse_bench.cli import main; main()"


@pytest.fixture
def unreachable_hub() -> dict[str, str]:
    """An environment whose hub endpoint is a closed localhost port, offline mode unset."""
    with socket.socket() as s:  # bound, never listening, then closed: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in {"HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"}}
    return env | {"HF_ENDPOINT": f"http://127.0.0.1:{port}"}


def test_a_hub_protocol_with_the_hub_unreachable_fails_at_once_in_one_line(tmp_path: Path, unreachable_hub):
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", CLI, "run", "--protocol", "shumailov2024", "--out", str(tmp_path / "run")],
        env=unreachable_hub,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - start
    output = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 2, done.stderr
    (error,) = [line for line in output if "error" in line.lower()]
    assert "hub name" in error and unreachable_hub["HF_ENDPOINT"] in error and "unreachable" in error
    assert output[-1].strip().startswith("fix: set HF_HUB_OFFLINE=1")
    assert not [line for line in output if "Retry" in line or "Traceback" in line]
    assert elapsed < 25  # huggingface_hub's retries alone took about 30 s


def test_every_hub_loader_refuses_an_unreachable_hub_by_name(unreachable_hub):
    """The run's tokenizer, the hf dataset and the hf model each refuse before asking the hub."""
    script = """
from collapse_bench.builtin.datasets import HubDataset
from collapse_bench.builtin.models.hf import HfModel, hub_revision
from collapse_bench.data import pretrained_tokenizer
from collapse_bench.errors import UserError
for load in (
    lambda: pretrained_tokenizer("some/tokenizer"),
    lambda: HubDataset(path="some/dataset").load(),
    lambda: hub_revision("some/model"),
    lambda: HfModel(path="some/model")._own_tokenizer(),
):
    try:
        load()
    except UserError as exc:
        print(exc.cause)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], env=unreachable_hub, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    causes = done.stdout.strip().splitlines()
    assert [c.split(" is a Hugging Face hub name")[0] for c in causes] == [
        "[data] tokenizer 'some/tokenizer'",
        "hf dataset 'some/dataset'",
        "hf model 'some/model'",
        "hf model 'some/model'",
    ]
    assert all("unreachable" in c for c in causes)
    assert "Retry" not in done.stderr
