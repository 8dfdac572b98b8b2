"""One engine, three executors: identical records, lost workers retried, failures and interrupts handled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from collapse_bench import RunConfig, run

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

#: 2 models x 2 seeds x 2 mixers = 8 chains of 2 generations.
GRID = RunConfig("smoke", ("ngram", "categorical"), ("replace", "accumulate"), seeds=2, generations=2)

#: A plugin folder: ``hold`` mixes like ``replace`` but, when a ``hold`` folder sits beside it, its
#: first call at generation 1 of seed 0 writes its process id there and waits (a step in flight to
#: kill); ``broken`` fails at generation 2; ``threads`` reports the worker's torch and BLAS threads;
#: the dataset ``counted`` is ``shakespeare`` that counts its loads.
PLUGIN = """
import os, time
from pathlib import Path
import numpy as np
from collapse_bench import hookimpl
from collapse_bench.builtin.datasets import Shakespeare
from collapse_bench.components import Metric, Mixer

HOLD = Path(__file__).parent / "hold"

class Hold(Mixer):
    name = "hold"
    def mix(self, ctx):
        if HOLD.is_dir() and ctx.generation == 1 and not (HOLD / "pid").exists():
            (HOLD / "pid.tmp").write_text(str(os.getpid()))
            (HOLD / "pid.tmp").rename(HOLD / "pid")
            time.sleep(120)
        return ctx.history[-1]

class Broken(Mixer):
    name = "broken"
    def mix(self, ctx):
        if ctx.generation == 2:
            raise RuntimeError("the broken mixer broke")
        return ctx.history[-1]

class Threads(Metric):
    name = "threads"
    modalities = frozenset({"text"})
    outputs = {"torch": "higher", "omp": "higher"}
    def compute(self, ctx):
        import torch
        return {"torch": torch.get_num_threads(), "omp": int(os.environ.get("OMP_NUM_THREADS", "0"))}

class Counted(Shakespeare):
    name = "counted"
    def load(self):
        with open(Path(__file__).parent / "loads", "a") as fh:
            fh.write("x")
        return super().load()

@hookimpl
def register_datasets(register):
    register(Counted)

@hookimpl
def register_mixers(register):
    register(Hold)
    register(Broken)

@hookimpl
def register_metrics(register):
    register(Threads)
"""


def plugin_dir(root: Path, hold: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "engine_test_plugin.py").write_text(PLUGIN)
    if hold:
        (root / "hold").mkdir()
    return root


def numbers(rundir: Path) -> dict:
    """What must not depend on the executor: every record's scores, training-set size and samples."""
    out = {}
    for line in (rundir / "records.jsonl").read_text().splitlines():
        r = json.loads(line)
        out[(r["model"], r["mixer"], r["seed"], r["generation"])] = (r["scores"], r["train_rows"])
    for line in (rundir / "samples.jsonl").read_text().splitlines():
        r = json.loads(line)
        key = (r["model"], r["mixer"], r["seed"], r["generation"])
        out[key] = (*out[key], r["rows"])
    return out


def cb(*args: str, cwd: Path, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "COLLAPSE_BENCH_CACHE": str(cache)}
    return subprocess.Popen(
        [sys.executable, "-c", "from collapse_bench.cli import main; main()", *args],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_for(path: Path, proc: subprocess.Popen | None = None, seconds: float = 180) -> str:
    deadline = time.time() + seconds
    while not path.exists():
        assert time.time() < deadline, f"{path} never appeared"
        assert proc is None or proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    return path.read_text()


@pytest.fixture(scope="module")
def local_numbers(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("local")
    result = run(GRID, rundir=tmp / "run", cache=tmp / "cache")
    assert not result.failures and result.computed == 2 * 2 * (1 + 2)
    return numbers(tmp / "run")


@pytest.fixture(scope="module")
def ray_address():
    """A local 2-CPU Ray cluster for this module; runs join it in-process or by its address."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def test_processes_give_the_records_of_local(tmp_path, local_numbers):
    from collapse_bench.engine.executors import ExecutorOptions

    result = run(GRID, rundir=tmp_path / "run", cache=tmp_path / "cache", executor=ExecutorOptions("processes", 2))
    assert not result.failures and result.computed == 12
    assert numbers(tmp_path / "run") == local_numbers
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "complete"


def test_ray_gives_the_records_of_local(tmp_path, local_numbers, ray_address):
    result = run(GRID, rundir=tmp_path / "run", cache=tmp_path / "cache", executor="ray")
    assert not result.failures and result.computed == 12
    assert numbers(tmp_path / "run") == local_numbers


def test_each_worker_gets_its_share_of_the_cores(tmp_path):
    plugins = plugin_dir(tmp_path / "plugins")
    args = ["--plugins-dir", str(plugins), "run", "--protocol", "smoke", "--generations", "2", "--metric", "threads"]
    done = finish(cb(*args, "--jobs", "2", "--run-id", "j", "-q", cwd=tmp_path, cache=tmp_path / "cache"))
    assert done.returncode == 0, done.stderr
    share = max(1, (os.cpu_count() or 1) // 2)
    for line in (tmp_path / "runs" / "j" / "records.jsonl").read_text().splitlines():
        assert json.loads(line)["scores"] == {"threads.torch": share, "threads.omp": share}


@pytest.mark.parametrize("executor", ["processes", "ray"])
def test_a_worker_killed_mid_step_is_retried_with_identical_numbers(tmp_path, executor, request):
    grid = ["run", "--protocol", "smoke", "--generations", "3", "--mixer", "hold", "--mixer", "replace", "-q"]
    how = ["--jobs", "2"] if executor == "processes" else ["--executor", "ray"]
    if executor == "ray":
        how += ["--ray-address", request.getfixturevalue("ray_address")]
    calm = plugin_dir(tmp_path / "calm")
    reference = finish(cb("--plugins-dir", str(calm), *grid, "--run-id", "ref", cwd=tmp_path, cache=tmp_path / "c1"))
    assert reference.returncode == 0, reference.stderr

    held = plugin_dir(tmp_path / "held", hold=True)
    proc = cb("--plugins-dir", str(held), *grid, *how, "--run-id", "k", cwd=tmp_path, cache=tmp_path / "c2")
    pid = int(wait_for(held / "hold" / "pid", proc))
    os.kill(pid, signal.SIGKILL)
    done = finish(proc)
    assert done.returncode == 0, done.stderr
    assert executor == "ray" or "a worker process died" in done.stderr  # said, not silent (Ray says it itself)
    assert numbers(tmp_path / "runs" / "k") == numbers(tmp_path / "runs" / "ref")
    assert json.loads((tmp_path / "runs" / "k" / "manifest.json").read_text())["status"] == "complete"


def test_a_plugin_failing_under_ray_is_recorded_while_the_others_finish(tmp_path, ray_address):
    plugins = plugin_dir(tmp_path / "plugins")
    args = ["--plugins-dir", str(plugins), "run", "--protocol", "smoke", "--generations", "4", "--seeds", "2"]
    args += ["--mixer", "broken", "--mixer", "replace", "--executor", "ray", "--ray-address", ray_address]
    done = finish(cb(*args, "--run-id", "f", "-q", cwd=tmp_path, cache=tmp_path / "cache"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "2 cell(s) failed" in done.stderr and "the broken mixer broke" in done.stderr
    rundir = tmp_path / "runs" / "f"
    failures = [json.loads(line) for line in (rundir / "failures.jsonl").read_text().splitlines()]
    assert sorted((f["mixer"], f["seed"], f["generation"]) for f in failures) == [("broken", 0, 2), ("broken", 1, 2)]
    assert all("RuntimeError" in f["traceback"] for f in failures)
    finished = {k: g for k, g in numbers(rundir).items()}
    assert {(k[1], k[2]) for k in finished if k[3] == 3} == {("replace", 0), ("replace", 1)}
    assert max(k[3] for k in finished if k[1] == "broken") == 1
    assert json.loads((rundir / "manifest.json").read_text())["status"] == "failed"


@pytest.mark.parametrize(
    ("sig", "executor"),
    [
        (signal.SIGTERM, "processes"),
        (signal.SIGHUP, "processes"),
        (signal.SIGINT, "processes"),
        (signal.SIGTERM, "ray"),
    ],
)
def test_a_signal_stops_every_worker_and_the_same_command_resumes(tmp_path, sig, executor, request):
    grid = ["run", "--protocol", "smoke", "--generations", "3", "--mixer", "hold", "--mixer", "replace"]
    how = ["--jobs", "2"] if executor == "processes" else ["--executor", "ray"]
    if executor == "ray":
        how += ["--ray-address", request.getfixturevalue("ray_address")]
    held = plugin_dir(tmp_path / "held", hold=True)
    proc = cb("--plugins-dir", str(held), *grid, *how, "--run-id", "s", "-q", cwd=tmp_path, cache=tmp_path / "cache")
    worker = int(wait_for(held / "hold" / "pid", proc))
    proc.send_signal(sig)
    stopped = finish(proc)
    assert stopped.returncode == 128 + sig and "interrupted" in stopped.stderr and "Traceback" not in stopped.stderr
    assert json.loads((tmp_path / "runs" / "s" / "manifest.json").read_text())["status"] == "interrupted"
    deadline = time.time() + 30
    while time.time() < deadline:  # the worker in the middle of a step is stopped with its driver
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"worker {worker} still runs after the driver was stopped")

    again = finish(cb("--plugins-dir", str(held), *grid, *how, "--run-id", "s", cwd=tmp_path, cache=tmp_path / "cache"))
    assert again.returncode == 0, again.stderr
    assert "(resumed)" in again.stderr
    calm = plugin_dir(tmp_path / "calm")
    ref = finish(cb("--plugins-dir", str(calm), *grid, "--run-id", "r", cwd=tmp_path, cache=tmp_path / "c2"))
    assert ref.returncode == 0, ref.stderr
    assert numbers(tmp_path / "runs" / "s") == numbers(tmp_path / "runs" / "r")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_inside_a_deferred_block_acts_when_the_block_ends(sig):
    """Starting a worker is deferred work: a half-started worker prints an EOFError traceback of its own."""
    from collapse_bench.interrupts import deferred, stop_signals_interrupt

    reached = []
    with pytest.raises(KeyboardInterrupt) as caught, stop_signals_interrupt():
        with deferred():
            os.kill(os.getpid(), sig)
            time.sleep(0.1)  # a handler runs at the next bytecode: the block would have been cut here
            reached.append("end of block")
        reached.append("after the block")
    assert reached == ["end of block"]
    assert getattr(caught.value, "signum", signal.SIGINT) == sig


def test_a_cluster_started_with_ray_start_and_a_token_is_joined_as_docs_say(tmp_path, local_numbers):
    """docs/scale-out.md's recipe: `ray start --head` (token authentication on, as Ray turns it on when
    ~/.ray/auth_token exists), then `--ray-address`; the driver sends the token without being told."""
    import socket
    import uuid

    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(uuid.uuid4().hex + uuid.uuid4().hex)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")} | {"HOME": str(home)}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray_bin = Path(sys.executable).parent / "ray"
    # `ray start` leaves its address in Ray's temporary folder, where a later `ray.init()` (another
    # test's local cluster) would look for a cluster to join: restored afterwards.
    current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    before = current.read_bytes() if current.exists() else None
    head = subprocess.Popen(
        [str(ray_bin), "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
         "--disable-usage-stats", "--block"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        grid = ["run", "-p", "smoke", "--model", "ngram", "--model", "categorical", "--mixer", "replace"]
        grid += ["--mixer", "accumulate", "--seeds", "2", "--generations", "2"]  # GRID
        args = [*grid, "--executor", "ray", "--ray-address", f"127.0.0.1:{port}", "--run-id", "t", "-q"]
        deadline = time.time() + 120
        while True:  # the head takes a few seconds to listen
            done = subprocess.run(
                [sys.executable, "-c", "from collapse_bench.cli import main; main()", *args],
                cwd=tmp_path, env=env | {"COLLAPSE_BENCH_CACHE": str(tmp_path / "cache")},
                capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            if done.returncode == 0 or time.time() > deadline or "nothing answers" not in done.stderr:
                break
            time.sleep(1)
        assert done.returncode == 0, done.stderr
        assert "InvalidAuthToken" not in done.stderr
        assert numbers(tmp_path / "runs" / "t") == local_numbers
    finally:
        head.terminate()  # --block: stopping `ray start` stops the processes it started
        head.wait(timeout=60)
        if before is None:
            current.unlink(missing_ok=True)
        else:
            current.write_bytes(before)


def test_the_fixture_and_the_command_line_make_the_same_run_directory(tmp_path, collapse_bench_run):
    from collapse_bench.testing import run_protocol

    run_protocol(tmp_path / "fixture", "smoke", generations=2, cache=tmp_path / "c1")
    done = finish(cb("run", "--protocol", "smoke", "--generations", "2", "--run-id", "cli", "-q",
                     cwd=tmp_path, cache=tmp_path / "c2"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    a, b = tmp_path / "fixture", tmp_path / "runs" / "cli"
    ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (a, b))
    assert ma["status"] == mb["status"] == "complete"
    for key in ("config", "protocol", "fingerprint", "data", "plugins", "models", "mixers", "metrics", "seeds"):
        assert ma[key] == mb[key], key
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()
    assert numbers(a) == numbers(b)


def test_a_rerun_reads_the_data_split_back_instead_of_loading_the_dataset(tmp_path):
    plugins = plugin_dir(tmp_path / "plugins")
    args = ["--plugins-dir", str(plugins), "run", "--protocol", "smoke", "--dataset", "counted", "--generations", "2"]
    first = finish(cb(*args, "--run-id", "a", "-q", cwd=tmp_path, cache=tmp_path / "cache"))
    second = finish(cb(*args, "--run-id", "b", "-q", cwd=tmp_path, cache=tmp_path / "cache"))
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert (plugins / "loads").read_text() == "x"  # loaded and split once, by the first run
    assert "computed: 0" in second.stderr
    assert numbers(tmp_path / "runs" / "a") == numbers(tmp_path / "runs" / "b")
    a, b = (tmp_path / "runs" / r for r in "ab")
    assert (a / "tokenizer.json").read_bytes() == (b / "tokenizer.json").read_bytes()
    data = [json.loads((r / "manifest.json").read_text())["data"] for r in (a, b)]
    assert data[0] == data[1]


HIDE_RAY = "raise ImportError('No module named ray')\n"


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--jobs", "0"], "--jobs is 0"),
        (["--executor", "proceses"], "did you mean 'processes'"),
        (["--executor", "ray"], "pip install 'collapse-bench[ray]'"),
        (["--executor", "ray", "--ray-address", "127.0.0.1:9"], "cannot reach the Ray cluster at 127.0.0.1:9"),
        (["--executor", "local", "--jobs", "2"], "--jobs 2 is for --executor processes, not local"),
        (["--executor", "ray", "--jobs", "2"], "--jobs 2 is for --executor processes, not ray"),
        (["--jobs", "2", "--gpus-per-task", "1"], "--gpus-per-task is for --executor ray, not processes"),
        (["--ray-address", "127.0.0.1:9"], "--ray-address is for --executor ray, not local"),
    ],
)
def test_bad_executor_settings_give_one_clear_line_and_write_nothing(tmp_path, args, expect):
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "ray.py").write_text(HIDE_RAY)
    env = {**os.environ, "COLLAPSE_BENCH_CACHE": str(tmp_path / "cache")}
    if "ray" in args and "--ray-address" not in args:
        env["PYTHONPATH"] = os.pathsep.join([str(hide), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", "from collapse_bench.cli import main; main()", "run", "--protocol", "smoke", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2 and expect in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 2  # the cause, and the fix
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


def test_a_cache_the_ray_workers_cannot_see_is_refused(tmp_path, ray_address):
    """The driver runs in a mount namespace of its own, with a private filesystem over the cache folder:
    what the workers write there, it cannot see, as with a cache that is not on a shared filesystem."""
    cache = tmp_path / "cache"
    cache.mkdir()
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs `unshare -m` (root) to give the driver a private view of the cache folder")
    command = (
        f"mount -t tmpfs none {cache} && exec {sys.executable} -c 'from collapse_bench.cli import main; main()' "
        f"run --protocol smoke --executor ray --ray-address {ray_address} --cache {cache}"
    )
    done = subprocess.run(["unshare", "-m", "sh", "-c", command], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"the cache {cache} is not shared with the Ray workers" in done.stderr
    assert not (tmp_path / "runs").exists()
