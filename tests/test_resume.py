"""Never lose work: kill and resume, damaged cache entries, failing plugins, concurrent processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_distribution

GRID = ["--protocol", "smoke", "--generations", "6", "--seeds", "2", "--mixer", "replace", "--mixer", "accumulate"]


def start(*args: str, cwd: Path, cache: Path, env: dict | None = None) -> subprocess.Popen:
    environment = {**os.environ, "COLLAPSE_BENCH_CACHE": str(cache), **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-c", "from collapse_bench.cli import main; main()", *args],
        cwd=cwd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def cb(*args: str, cwd: Path, cache: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = start(*args, cwd=cwd, cache=cache, env=env)
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def scores(rundir: Path) -> dict:
    """Every score of a run, keyed by cell and generation."""
    out = {}
    for line in (rundir / "records.jsonl").read_text().splitlines():
        rec = json.loads(line)
        out[(rec["model"], rec["mixer"], rec["seed"], rec["generation"])] = rec["scores"]
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The scores of an uninterrupted run, with a cache of its own."""
    tmp = tmp_path_factory.mktemp("reference")
    res = cb("run", *GRID, "--run-id", "ref", "-q", cwd=tmp, cache=tmp / "cache")
    assert res.returncode == 0, res.stderr
    return scores(tmp / "runs" / "ref")


@pytest.mark.parametrize("kill_after", [1, 7, 15])
def test_sigkill_then_same_command_finishes_identically(tmp_path, reference, kill_after):
    args = ["run", *GRID, "--run-id", "r", "-q"]
    proc = start(*args, cwd=tmp_path, cache=tmp_path / "cache")
    records = tmp_path / "runs" / "r" / "records.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if records.exists() and len(records.read_text().splitlines()) >= kill_after:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    res = cb(*args, cwd=tmp_path, cache=tmp_path / "cache")
    assert res.returncode == 0, res.stderr
    assert "(resumed)" in res.stderr
    reused = int(res.stderr.split("steps reused from the cache")[1].split(":")[1].split(";")[0])
    assert reused >= 1
    assert scores(tmp_path / "runs" / "r") == reference
    assert json.loads((tmp_path / "runs" / "r" / "manifest.json").read_text())["status"] == "complete"


def test_rerun_recomputes_nothing(tmp_path, reference):
    first = cb("run", *GRID, "--run-id", "a", "-q", cwd=tmp_path, cache=tmp_path / "cache")
    second = cb("run", *GRID, "--run-id", "b", "-q", cwd=tmp_path, cache=tmp_path / "cache")
    assert first.returncode == second.returncode == 0
    assert "computed: 0" in second.stderr
    assert scores(tmp_path / "runs" / "b") == scores(tmp_path / "runs" / "a") == reference
    records = [json.loads(line) for line in (tmp_path / "runs" / "b" / "records.jsonl").read_text().splitlines()]
    assert all(r["cached"] for r in records)


def test_damaged_cache_entries_are_detected_and_recomputed(tmp_path, reference):
    cache = tmp_path / "cache"
    assert cb("run", *GRID, "--run-id", "a", "-q", cwd=tmp_path, cache=cache).returncode == 0
    steps = sorted((cache / "steps").glob("*/*"))
    samples = steps[0] / "samples.npy"
    data = bytearray(samples.read_bytes())
    data[-1] ^= 0xFF
    samples.write_bytes(bytes(data))
    next((steps[1] / "model").iterdir()).write_bytes(b"truncated")
    (steps[2] / "scores.json").write_text('{"metric": "perplex')
    res = cb("run", *GRID, "--run-id", "b", "-q", cwd=tmp_path, cache=cache)
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("is damaged") >= 2 and "are damaged" in res.stderr
    assert scores(tmp_path / "runs" / "b") == reference


FLAKY = '''
import os
import numpy as np
from collapse_bench import Mixer, hookimpl


class Flaky(Mixer):
    """Replace, but raises at generation 2 while FLAKY_FAIL is set."""

    name = "flaky"

    def mix(self, ctx):
        if ctx.generation == 2 and os.environ.get("FLAKY_FAIL"):
            raise RuntimeError("the flaky mixer broke")
        return ctx.history[-1]


@hookimpl
def register_mixers(register):
    register(Flaky)
'''


def test_a_failing_cell_is_recorded_while_the_others_finish_then_retried(tmp_path):
    env = make_distribution(tmp_path / "site", "flaky-plugin", FLAKY)
    args = [
        "run",
        "--protocol",
        "smoke",
        "--generations",
        "4",
        "--mixer",
        "replace",
        "--mixer",
        "flaky",
        "--run-id",
        "f",
    ]
    res = cb(*args, cwd=tmp_path, cache=tmp_path / "cache", env={**env, "FLAKY_FAIL": "1"})
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "1 cell(s) failed" in res.stderr and "the flaky mixer broke" in res.stderr
    assert "--retry-failed" in res.stderr
    rundir = tmp_path / "runs" / "f"
    failure = json.loads((rundir / "failures.jsonl").read_text())
    assert failure["mixer"] == "flaky" and failure["generation"] == 2
    assert "RuntimeError" in failure["traceback"]
    done = scores(rundir)
    assert {k[1] for k in done} == {"replace", "flaky"}
    assert max(g for (_, mixer, _, g) in done if mixer == "replace") == 3
    assert max(g for (_, mixer, _, g) in done if mixer == "flaky") == 1

    for scores_file in (tmp_path / "cache" / "steps").glob("*/*/scores.json"):
        scores_file.write_text("{}")  # valid JSON, but not what was stored: never used, never fatal
    retry = cb("run", "--retry-failed", str(rundir), cwd=tmp_path, cache=tmp_path / "cache", env=env)
    assert retry.returncode == 0, retry.stderr
    assert "carries no recorded hash" in retry.stderr
    assert not (rundir / "failures.jsonl").exists()
    assert max(g for (_, mixer, _, g) in scores(rundir) if mixer == "flaky") == 3
    # Only the failed cell's later generations were computed: 2 of the 4 generations of "flaky".
    assert "computed: 2" in retry.stderr
    assert {k: v for k, v in scores(rundir).items() if k[1] == "replace"} == {
        k: v for k, v in done.items() if k[1] == "replace"
    }


def test_retry_with_a_pruned_cache_keeps_finished_cells_and_recomputes_only_the_failed_one(tmp_path):
    env = make_distribution(tmp_path / "site", "flaky-plugin", FLAKY)
    args = ["run", "--protocol", "smoke", "--generations", "4", "--mixer", "replace", "--mixer", "flaky"]
    cache = tmp_path / "cache"
    res = cb(*args, "--run-id", "f", cwd=tmp_path, cache=cache, env={**env, "FLAKY_FAIL": "1"})
    assert res.returncode == 2
    rundir = tmp_path / "runs" / "f"
    replace_lines = [line for line in (rundir / "records.jsonl").read_text().splitlines() if '"replace"' in line]
    assert cb("cache", "prune", "--all", "--cache", str(cache), cwd=tmp_path, cache=cache).returncode == 0
    retry = cb("run", "--retry-failed", str(rundir), cwd=tmp_path, cache=cache, env=env)
    assert retry.returncode == 0, retry.stderr
    # The finished cell is kept as it was; the failed chain is rebuilt from generation 0 (4 steps).
    assert "computed: 4" in retry.stderr
    lines = (rundir / "records.jsonl").read_text().splitlines()
    assert [line for line in lines if '"replace"' in line] == replace_lines
    assert len(lines) == 8 and not (rundir / "failures.jsonl").exists()


def test_second_process_on_the_same_run_directory_is_refused(tmp_path):
    args = ["run", "--protocol", "smoke", "--generations", "30", "--run-id", "busy", "-q"]
    first = start(*args, cwd=tmp_path, cache=tmp_path / "cache")
    lock_seen = time.time() + 60
    while not (tmp_path / "runs" / "busy" / "records.jsonl").exists() and time.time() < lock_seen:
        time.sleep(0.01)
    second = cb(*args, cwd=tmp_path, cache=tmp_path / "cache")
    first.wait(timeout=600)
    assert first.returncode == 0
    assert second.returncode == 2 and "another collapse-bench process is writing" in second.stderr


def test_two_processes_share_one_cache_safely(tmp_path, reference):
    a = start("run", *GRID, "--run-id", "a", "-q", cwd=tmp_path, cache=tmp_path / "cache")
    b = start("run", *GRID, "--run-id", "b", "-q", cwd=tmp_path, cache=tmp_path / "cache")
    assert a.wait(timeout=600) == 0 and b.wait(timeout=600) == 0
    assert scores(tmp_path / "runs" / "a") == scores(tmp_path / "runs" / "b") == reference
    steps = list((tmp_path / "cache" / "steps").glob("*/*"))
    assert len(steps) == 2 * (1 + 2 * 5)  # seeds x (shared generation 0 + mixers x later generations)


def test_a_complete_run_is_not_overwritten(tmp_path):
    args = ["run", "--protocol", "smoke", "--run-id", "done", "-q"]
    assert cb(*args, cwd=tmp_path, cache=tmp_path / "cache").returncode == 0
    before = (tmp_path / "runs" / "done" / "records.jsonl").read_bytes()
    again = cb(*args, cwd=tmp_path, cache=tmp_path / "cache")
    assert again.returncode == 2 and "already holds a complete run" in again.stderr
    other = cb("run", "--protocol", "smoke", "--seeds", "2", "--run-id", "done", cwd=tmp_path, cache=tmp_path / "cache")
    assert other.returncode == 2 and "another configuration" in other.stderr
    assert (tmp_path / "runs" / "done" / "records.jsonl").read_bytes() == before


def _edit_manifest(rundir: Path, edit) -> None:
    """Change the stored config of a finished run and mark it interrupted, as a killed run leaves it."""
    path = rundir / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest["config"])
    manifest["status"] = "interrupted"
    path.write_text(json.dumps(manifest))


def test_a_run_of_an_older_version_resumes_and_an_unknown_config_field_is_refused(tmp_path):
    args = ["run", "--protocol", "smoke", "--run-id", "old", "-q"]
    rundir = tmp_path / "runs" / "old"
    assert cb(*args, cwd=tmp_path, cache=tmp_path / "cache").returncode == 0
    before = scores(rundir)
    # A manifest written before `--set` existed has no "sets" in its config: the same run.
    _edit_manifest(rundir, lambda config: config.pop("sets"))
    resumed = cb(*args, cwd=tmp_path, cache=tmp_path / "cache")
    assert resumed.returncode == 0, resumed.stderr
    assert "(resumed)" in resumed.stderr and "computed: 0" in resumed.stderr
    assert scores(rundir) == before
    manifest = json.loads((rundir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["config"]["sets"] == []
    # A field this version does not know could configure anything: another configuration.
    _edit_manifest(rundir, lambda config: config.update(shards=4))
    records = (rundir / "records.jsonl").read_bytes()
    refused = cb(*args, cwd=tmp_path, cache=tmp_path / "cache")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert (
        refused.stderr.splitlines()[0]
        == f"collapse-bench: error: {rundir.relative_to(tmp_path)} holds a run with another configuration"
    )
    retry = cb("run", "--retry-failed", str(rundir), cwd=tmp_path, cache=tmp_path / "cache")
    assert retry.returncode == 2 and "Traceback" not in retry.stderr
    assert "configured with 'shards', which this collapse-bench does not know" in retry.stderr.splitlines()[0]
    assert (rundir / "records.jsonl").read_bytes() == records


def test_cache_info_and_prune(tmp_path):
    cache = tmp_path / "cache"
    assert cb("run", "--protocol", "smoke", "-q", cwd=tmp_path, cache=cache).returncode == 0
    info = cb("cache", "info", "--cache", str(cache), cwd=tmp_path, cache=cache)
    assert "steps: 5" in info.stdout  # generation 0 + 2 mixers x 2 later generations
    # The space the disk really holds, as du counts it (blocks of files and folders), not apparent sizes.
    du = int(subprocess.run(["du", "-sB1", str(cache)], capture_output=True, text=True, check=True).stdout.split()[0])
    files = sum(len(names) for _, _, names in os.walk(cache))
    assert f"disk space used: {du / 2**20:.1f} MiB in {files} files" in info.stdout
    for step in (cache / "steps").glob("*/*"):  # all scores of a step in one file
        assert (step / "scores.json").is_file() and not (step / "scores").exists()
    assert cb("cache", "prune", "--cache", str(cache), cwd=tmp_path, cache=cache).returncode == 2
    kept = cb("cache", "prune", "--older-than", "1", "--cache", str(cache), cwd=tmp_path, cache=cache)
    assert "removed 0 step(s)" in kept.stdout
    gone = cb("cache", "prune", "--all", "--cache", str(cache), cwd=tmp_path, cache=cache)
    assert "removed 5 step(s)" in gone.stdout
    assert "steps: 0" in cb("cache", "info", "--cache", str(cache), cwd=tmp_path, cache=cache).stdout


def test_resumed_and_uninterrupted_runs_match_bit_for_bit(tmp_path):
    """Numbers restored from the cache equal freshly computed ones exactly, not approximately."""
    fresh = cb("run", *GRID, "--run-id", "x", "-q", cwd=tmp_path, cache=tmp_path / "c1")
    again = cb("run", *GRID, "--run-id", "y", "-q", cwd=tmp_path, cache=tmp_path / "c1")
    assert fresh.returncode == again.returncode == 0
    a, b = scores(tmp_path / "runs" / "x"), scores(tmp_path / "runs" / "y")
    for key in a:
        assert np.array_equal(np.array(list(a[key].values())), np.array(list(b[key].values()))), key


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_an_interrupted_resume_on_another_cache_keeps_every_record(tmp_path, reference):
    args = ["run", *GRID, "--run-id", "r", "-q"]
    rundir = tmp_path / "runs" / "r"
    first = start(*args, cwd=tmp_path, cache=tmp_path / "cache")
    _kill_when(first, lambda: _lines(rundir / "records.jsonl") >= 5)
    before = (rundir / "records.jsonl").read_bytes()
    assert len(before.splitlines()) >= 5
    # Resume against an empty cache, killed once it has written new records aside.
    other = ["--cache", str(tmp_path / "other")]
    resume = start(*args, *other, cwd=tmp_path, cache=tmp_path / "cache")
    _kill_when(resume, lambda: _lines(rundir / ".resume" / "records.jsonl") >= 1)
    assert (rundir / "records.jsonl").read_bytes() == before
    done = cb(*args, *other, cwd=tmp_path, cache=tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    assert scores(rundir) == reference

    def by_cell(lines: list[str]) -> dict:
        records = map(json.loads, lines)
        return {
            tuple(r[k] for k in ("model", "mixer", "seed", "generation")): (r["step"], r["scores"]) for r in records
        }

    kept, after = by_cell(before.decode().splitlines()), by_cell((rundir / "records.jsonl").read_text().splitlines())
    assert {cell: after[cell] for cell in kept} == kept  # the earlier attempt's steps and scores
    from collapse_bench import load_results

    df = load_results(rundir)
    assert not df.duplicated(["model", "mixer", "seed", "generation", "metric"]).any()
    assert len(df) == len(reference) * len(next(iter(reference.values())))


def test_a_run_directory_without_its_manifest_is_never_appended_to(tmp_path):
    args = ["run", "--protocol", "smoke", "--run-id", "x", "-q"]
    rundir = tmp_path / "runs" / "x"
    assert cb(*args, cwd=tmp_path, cache=tmp_path / "cache").returncode == 0
    records = (rundir / "records.jsonl").read_bytes()
    (rundir / "manifest.json").unlink()
    again = cb(*args, cwd=tmp_path, cache=tmp_path / "cache")
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert "holds records.jsonl but no manifest.json" in again.stderr
    assert (rundir / "records.jsonl").read_bytes() == records


def test_load_results_returns_each_value_once(tmp_path):
    from collapse_bench import load_results

    assert cb("run", "--protocol", "smoke", "--run-id", "x", "-q", cwd=tmp_path, cache=tmp_path / "c").returncode == 0
    records = tmp_path / "runs" / "x" / "records.jsonl"
    once = load_results(records.parent)
    values = sum(len(json.loads(line)["scores"]) for line in records.read_text().splitlines())
    records.write_text(records.read_text() * 2)  # as an old version appending to old records left it
    twice = load_results(records.parent)
    assert len(once) == values and len(records.read_text().splitlines()) == 2 * 6  # 2 mixers x 3 generations
    assert twice.equals(once)


def test_edited_scores_and_step_metadata_are_detected_and_recomputed(tmp_path, reference):
    cache = tmp_path / "cache"
    assert cb("run", *GRID, "--run-id", "a", "-q", cwd=tmp_path, cache=cache).returncode == 0
    steps = sorted((cache / "steps").glob("*/*"))
    edited = json.loads((steps[0] / "scores.json").read_text())
    record = next(iter(edited["metrics"].values()))
    name = next(iter(record["scores"]))
    record["scores"][name] *= 0.5  # valid JSON, plausible value: only the recorded hash tells
    (steps[0] / "scores.json").write_text(json.dumps(edited))
    (steps[1] / "scores.json").write_text("{}")
    meta = json.loads((steps[2] / "meta.json").read_text())
    meta["train_rows"] += 1
    (steps[2] / "meta.json").write_text(json.dumps(meta))
    res = cb("run", *GRID, "--run-id", "b", "-q", cwd=tmp_path, cache=cache)
    assert res.returncode == 0, res.stderr
    assert "does not match its recorded hash" in res.stderr and "carries no recorded hash" in res.stderr
    assert "meta.json: its content does not match its recorded hash" in res.stderr
    assert scores(tmp_path / "runs" / "b") == reference

    def rows(run_id: str) -> dict:
        lines = (tmp_path / "runs" / run_id / "records.jsonl").read_text().splitlines()
        return {json.loads(line)["step"]: json.loads(line)["train_rows"] for line in lines}

    assert rows("b") == rows("a")


def test_a_sealed_file_of_another_step_is_not_taken_for_this_one(tmp_path, reference):
    """Each sealed file's hash still holds when it is copied: the step it belongs to must match."""
    cache = tmp_path / "cache"
    assert cb("run", *GRID, "--run-id", "a", "-q", cwd=tmp_path, cache=cache).returncode == 0
    steps = sorted((cache / "steps").glob("*/*"))
    (steps[0] / "scores.json").write_bytes((steps[1] / "scores.json").read_bytes())
    for name in ("meta.json", "model", "samples.npy"):  # a whole entry copied under another key
        target, source = steps[2] / name, steps[3] / name
        if target.is_dir():
            shutil.rmtree(target)
            shutil.copytree(source, target)
        else:
            target.write_bytes(source.read_bytes())
    res = cb("run", *GRID, "--run-id", "b", "-q", cwd=tmp_path, cache=cache)
    assert res.returncode == 0, res.stderr
    assert f"cached scores of step {steps[0].name[:12]} are damaged (they belong to another step)" in res.stderr
    assert f"cache entry {steps[2].name[:12]} is damaged (meta.json belongs to another step)" in res.stderr
    assert scores(tmp_path / "runs" / "b") == reference
