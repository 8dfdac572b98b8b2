"""The command line, end to end: runs, listings, leaderboards, and one clear line for bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from collapse_bench.cli import cli


def cb(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-c", "from collapse_bench.cli import main; main()", *args],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=600,
    )  # fmt: skip


def test_run_smoke_writes_a_run_directory_and_a_summary(tmp_path):
    res = cb(
        "run",
        "--protocol",
        "smoke",
        "--mixer",
        "replace",
        "--mixer",
        "keep-real:fraction=0.5",
        "--run-id",
        "r1",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert "perplexity (lower is better)" in res.stdout
    assert "ngram / keep-real:fraction=0.5" in res.stdout
    rundir = tmp_path / "runs" / "r1"
    for name in ("manifest.json", "records.jsonl", "samples.jsonl", "tokenizer.json"):
        assert (rundir / name).is_file()
    import json

    manifest = json.loads((rundir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["protocol"]["name"] == "smoke"
    assert manifest["data"]["hashes"]["train"] and manifest["packages"]["numpy"]
    assert {p["kind"] for p in manifest["plugins"]} == {"dataset", "model", "mixer", "metric"}
    records = (rundir / "records.jsonl").read_text().splitlines()
    assert len(records) == 2 * 3  # 2 mixers x 3 generations

    show = cb("show", str(rundir), "--samples", "--generation", "2", cwd=tmp_path)
    assert show.returncode == 0 and "generation 2" in show.stdout

    board = cb("leaderboard", "runs", "--out", "boards/smoke.md", cwd=tmp_path)
    assert board.returncode == 0, board.stderr
    text = (tmp_path / "boards" / "smoke.md").read_text()
    assert "## smoke@1.0" in text and "| rank" in text
    assert list((tmp_path / "boards").glob("*.png"))


def test_list_shows_every_kind_with_origin(tmp_path):
    res = cb("list", cwd=tmp_path)
    assert res.returncode == 0
    for name in ("shakespeare", "text-files", "hf", "normal", "gaussian", "categorical", "ngram", "replace",
                 "keep-real", "accumulate", "accumulate-subsample", "fresh-real", "perplexity",
                 "reference-perplexity", "tail", "repetition", "unigram-divergence", "variance", "smoke",
                 "quick", "theory"):  # fmt: skip
        assert f"\n{name} " in res.stdout, name
    assert "collapse-bench" in res.stdout


def test_list_takes_a_kind_in_the_singular_or_the_plural(tmp_path):
    singular, plural = cb("list", "mixer", cwd=tmp_path), cb("list", "mixers", cwd=tmp_path)
    assert singular.returncode == plural.returncode == 0 and singular.stdout == plural.stdout
    assert singular.stdout.startswith("Mixers\n") and "\nselect " in singular.stdout
    assert "\nngram " not in singular.stdout
    assert cb("list", "mixxers", cwd=tmp_path).returncode == 2


BAD_PROTOCOL_MISSING = 'name = "x"\nversion = "1.0"\n'
BAD_PROTOCOL_TYPE = (
    (Path(__file__).parent.parent / "collapse_bench/protocols/smoke.toml")
    .read_text()
    .replace("generations = 3", 'generations = "three"')
)


@pytest.mark.parametrize(
    ("args", "files", "expect"),
    [
        (["run", "--model", "ngramm"], {}, "did you mean 'ngram'"),
        (["run", "--mixer", "keep-real:fractoin=0.1"], {}, "has no parameter 'fractoin'"),
        (["run", "--mixer", "keep-real:fraction=lots"], {}, "not a valid float"),
        (["run", "--model", "ngram:order=0"], {}, "order"),
        (["run", "--protocol", "nope"], {}, "unknown protocol 'nope'"),
        (["run", "--protocol", "p.toml"], {"p.toml": BAD_PROTOCOL_MISSING}, "has no field"),
        (["run", "--protocol", "p.toml"], {"p.toml": BAD_PROTOCOL_TYPE}, "'generations' is 'three'"),
        (["run", "--protocol", "p.toml"], {"p.toml": "name = [unclosed"}, "not valid TOML"),
        (["run", "--protocol", "smoke", "--metric", "variance"], {}, "cannot score model"),
        (["run", "--protocol", "theory", "--metric", "repetition"], {}, "cannot score model"),
        (["run", "--protocol", "smoke", "--model", "gaussian"], {}, "works on vector data"),
        (
            [
                "run",
                "--protocol",
                "smoke",
                "--dataset",
                "shakespeare:genres=tragedies+roman",
                "--model",
                "ngram:order=9",
            ],
            {},
            "order",
        ),
        (["run", "--protocol", "theory", "--dataset", "normal:n=50"], {}, "needs 1020"),
        (["run", "--protocol", "smoke", "--dataset", "text-files:path=missing.txt"], {}, "found no file"),
        (["leaderboard", "nowhere"], {}, "does not exist"),
        (["run", "--out", "afile/runs"], {"afile": "not a folder"}, "is not a folder"),
        (["run", "--seeds", "0"], {}, "collapse-bench run --help"),
        (["run", "--frobnicate"], {}, "No such option"),
        (["run", "--retry-failed", "nowhere"], {}, "holds no run"),
        (["run", "--model", "ngram", "--model", "ngram"], {}, "given twice"),
        (["run", "--protocol", "smoke", "--mixer", "fresh-real:fraction=1", "--generations", "100"], {}, "fresh-real"),
        (["cache", "prune"], {}, "--older-than DAYS or --all"),
    ],
)
def test_bad_input_gives_one_clear_line_and_exit_2(tmp_path, args, files, expect):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    res = cb(*args, cwd=tmp_path)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    assert res.stderr.startswith("collapse-bench: error:")
    assert expect in res.stderr
    assert "fix:" in res.stderr
    assert not (tmp_path / "runs").exists()  # refused before anything was written


def test_help_lists_commands():
    from click.testing import CliRunner

    res = CliRunner().invoke(cli, ["--help"])
    assert res.exit_code == 0
    for command in ("run", "list", "show", "leaderboard"):
        assert command in res.output


def test_a_variant_is_labelled_with_what_ran_in_show_leaderboard_plot_and_manifest(tmp_path):
    import json

    args = ["run", "-p", "smoke", "--generations", "2", "--set", "data.test_size=32", "--mixer", "replace"]
    res = cb(*args, "--model", "categorical:alpha=1", "--run-id", "v", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    label = "smoke@1.0 (variant: data.test_size=32, generations=2)"
    assert json.loads((tmp_path / "runs" / "v" / "manifest.json").read_text())["label"] == label
    show = cb("show", "runs/v", cwd=tmp_path)
    assert show.stdout.startswith(f"v: {label}, status complete\ndataset shakespeare:genres=roman, 2 generations, ")
    threads = os.environ.get("OMP_NUM_THREADS") or str(os.cpu_count())  # no torch in this run: OpenMP's count
    assert f"seconds by activity; threads per process: {threads}\n" in show.stdout
    assert cb("leaderboard", "runs", "--out", "boards/b.md", cwd=tmp_path).returncode == 0
    text = (tmp_path / "boards" / "b.md").read_text()
    assert f"## {label}\n" in text
    assert "A variant of smoke@1.0: dataset shakespeare:genres=roman, 2 generations of 256 samples." in text
    (png,) = (tmp_path / "boards").glob("*.png")
    assert png.name.startswith("b-smoke-1.0-")


def test_piped_progress_is_a_line_per_finished_cell_plus_one_every_few_seconds(tmp_path):
    import time

    from collapse_bench.progress import INTERVAL

    started = time.monotonic()
    res = cb("run", "-p", "smoke", "--mixer", "replace", "--mixer", "accumulate", "--seeds", "2", cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert res.returncode == 0, res.stderr
    progress = [line for line in res.stderr.splitlines() if line.startswith("[")]
    finished = [line for line in progress if line.endswith("(cell finished)")]
    assert len(finished) == 4  # 2 mixers x 2 seeds, each reported when its generation 2 is scored
    assert finished[-1].startswith("[10/10] ")  # 2 seeds x (generation 0, shared, + 2 mixers x generations 1, 2)
    assert len(progress) - len(finished) <= elapsed / INTERVAL
    head = res.stderr.splitlines()[0]  # whole, though longer than the 80 columns rich assumes in a pipe
    assert head.startswith("smoke@1.0 on shakespeare") and " -> runs/" in head and len(head) > 80
    run_dir = head.split(" -> ")[1]
    assert res.stdout.rstrip().endswith(f"next: collapse-bench show {run_dir} --samples")


def test_piped_progress_lines_by_the_clock():
    from collapse_bench.progress import PipedProgress

    lines, now = [], [0.0]
    p = PipedProgress(6, 3, lines.append, interval=5.0, clock=lambda: now[0])
    for t, text in [(1, "m | r | seed 0 | generation 0"), (6, "m | r | seed 0 | generation 1"),
                    (7, "m | r | seed 0 | generation 2"), (8, "m | a | seed 0 | generation 1"),
                    (9, "FAILED m | a | seed 0 | generation 2: boom")]:  # fmt: skip
        now[0] = t
        p.step(text)
    # t=1: 1 s since the start, quiet; t=6: 6 s, a line; t=7: a cell finished; t=8: 1 s since, quiet; failure: always
    assert lines == [
        "[2/6] m | r | seed 0 | generation 1",
        "[3/6] m | r | seed 0 | generation 2 (cell finished)",
        "[4/6] FAILED m | a | seed 0 | generation 2: boom",
    ]
