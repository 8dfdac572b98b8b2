"""The plugin distributions under ``plugins/``: each one's own test suite, run from the main suite.

Every folder in ``plugins/`` is a separately installable package with its own ``tests/``, which
install it into a fresh environment and drive it through the ``collapse-bench`` command. Here each
suite runs in its own pytest process, from the package's folder, as its author would run it.
A suite that skips tests (a missing optional dependency) is reported as skipped, with its reasons.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
PACKAGES = sorted(p.parent for p in PLUGINS.glob("*/pyproject.toml"))
#: A line of pytest's short summary of skips (``-rs``): ``SKIPPED [2] tests/test_x.py:12: reason``.
SKIPPED = re.compile(r"^SKIPPED \[\d+\] \S+?:\d+: (.*)$", re.MULTILINE)


def test_there_are_plugin_packages():
    assert {p.name for p in PACKAGES} >= {"collapse-bench-example", "collapse-bench-mauve"}


@pytest.mark.slow
@pytest.mark.parametrize("package", PACKAGES, ids=[p.name for p in PACKAGES])
def test_plugin_package_suite(package: Path):
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]
    done = subprocess.run(command, cwd=package, capture_output=True, text=True, timeout=600)
    skips = sorted(set(SKIPPED.findall(done.stdout)))
    # Exit code 5 (no tests ran) is fine only when whole modules were skipped.
    passed = done.returncode == 0 or (done.returncode == 5 and skips)
    assert passed, f"{package.name} tests failed:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
    if skips:
        pytest.skip(f"{package.name}: {'; '.join(skips)}")
