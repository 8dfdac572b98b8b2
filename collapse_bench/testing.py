"""A pytest plugin for plugin authors: run your component through the real harness in a test.

Installed with collapse-bench (entry point ``pytest11``), so its fixtures are available in any
test suite of an environment that has collapse-bench::

    def test_my_mixer_keeps_perplexity_down(collapse_bench_run):
        df = collapse_bench_run(mixers=["replace", "my-mixer"], generations=4)
        last = df[(df.generation == 3) & (df.metric == "perplexity")].set_index("mixer").value
        assert last["my-mixer"] < last["replace"]

Components must be registered (installed with an entry point, or loaded from a folder named
in ``COLLAPSE_BENCH_PLUGINS_DIR``). To test the packaging itself, ``collapse_bench_install``
installs a package into a fresh environment and runs the ``collapse-bench`` command there. For
checks of the component contract itself, see :mod:`collapse_bench.contract`.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sysconfig
import tomllib
import venv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest

from collapse_bench import RealData

if TYPE_CHECKING:
    from collapse_bench.protocol import Protocol


def protocol_with(name: str = "smoke", **tables: Any) -> Protocol:
    """A registered protocol with whole fields or tables replaced, validated like its file.

    ``protocol_with("smoke", decoding={"strategy": "greedy"})`` is the ``smoke`` protocol that
    decodes greedily: a real :class:`~collapse_bench.protocol.Protocol`, for a component's ``check``.
    """
    from collapse_bench.plugins import get_registry
    from collapse_bench.protocol import parse_protocol

    path = Path(get_registry().get("protocol", name).obj)
    with path.open("rb") as fh:
        table = tomllib.load(fh)
    return parse_protocol(table | tables, str(path))


def run_protocol(
    out: Path,
    protocol: str = "smoke",
    models: Sequence[str] = (),
    mixers: Sequence[str] = (),
    metrics: Sequence[str] = (),
    cache: Path | None = None,
    **overrides,
) -> pd.DataFrame:
    """Run a protocol (with ``overrides`` of its fields) into ``out``; return the tidy results.

    The run is made by :func:`collapse_bench.run`, as ``collapse-bench run`` makes it. A cell
    that fails raises ``AssertionError`` carrying the component's traceback.
    """
    from collapse_bench import load_results
    from collapse_bench.engine.driver import run
    from collapse_bench.plan import RunConfig

    seeds, generations = overrides.pop("seeds", None), overrides.pop("generations", None)
    config = RunConfig(
        protocol, tuple(models), tuple(mixers), tuple(metrics), None, seeds, generations, overrides=overrides
    )
    result = run(config, rundir=out, cache=cache or out / "cache", argv=["pytest"])
    assert not result.failures, "\n\n".join(f.traceback for f in result.failures)
    return load_results(out)


@pytest.fixture
def collapse_bench_run(tmp_path: Path) -> Callable[..., pd.DataFrame]:
    """``collapse_bench_run(protocol="smoke", models=..., mixers=..., metrics=..., **overrides)``.

    Runs the grid through the real harness into a fresh temporary run directory and cache, and
    returns :func:`collapse_bench.load_results` of it. ``overrides`` replace protocol fields, e.g.
    ``generations=4`` or ``seeds=2``.
    """
    counter = iter(range(10_000))

    def _run(protocol: str = "smoke", *args, **kwargs) -> pd.DataFrame:
        return run_protocol(tmp_path / f"run{next(counter)}", protocol, *args, **kwargs)

    return _run


@pytest.fixture
def tiny_corpus() -> RealData:
    """The real data of the ``smoke`` protocol: Shakespeare's Roman plays, 32-token rows, 512-token BPE."""
    from collapse_bench.contract import real_data

    return real_data("text")


class InstalledPlugin:
    """A fresh virtual environment, layered over the current one, with one package installed into it.

    The package is built and installed from a copy of its source, offline and without its
    dependencies (they come from the current environment), so what is tested is the packaging:
    the entry point, the distribution's name and version, the hooks.
    """

    def __init__(self, package: Path, root: Path) -> None:
        venv.create(root / "venv", with_pip=False)
        self.python = root / "venv" / "bin" / "python"
        purelib = sysconfig.get_path("purelib", scheme="venv", vars={"base": str(root / "venv")})
        # A venv made inside another venv does not see the outer one's packages, even with
        # --system-site-packages: a .pth file adds the current site directories after its own.
        outer = "".join(f"import site; site.addsitedir({p!r})\n" for p in site.getsitepackages())
        Path(purelib, "outer-environment.pth").write_text(outer)
        source = shutil.copytree(
            package, root / "src", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
        )
        pip = [self.python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", source]
        subprocess.run(pip, check=True)
        subprocess.run([self.python, "-m", "pip", "check"], check=True)  # its requirements are met

    def cli(self, *args: str, cache: Path) -> str:
        """Run ``collapse-bench ARGS`` in that environment, offline; return its output, failing on an error."""
        env = os.environ | {"COLLAPSE_BENCH_CACHE": str(cache), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
        done = subprocess.run(
            [self.python, "-c", "from collapse_bench.cli import main; main()", *args],
            capture_output=True, text=True, env=env, timeout=1800,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture(scope="module")
def collapse_bench_install(tmp_path_factory) -> Callable[[Path | str], InstalledPlugin]:
    """``collapse_bench_install(package_dir)``: the package installed in a fresh environment (once per module)."""
    pytest.importorskip("setuptools", reason="building a package offline needs setuptools: pip install setuptools")
    installed: dict[Path, InstalledPlugin] = {}

    def _install(package: Path | str) -> InstalledPlugin:
        package = Path(package).resolve()
        if package not in installed:
            installed[package] = InstalledPlugin(package, tmp_path_factory.mktemp("env"))
        return installed[package]

    return _install
