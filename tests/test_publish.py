"""Export and publish: a real smoke run becomes a bundle, then pages, figures and a site; bad input is refused."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from collapse_bench import bundle as bundles
from collapse_bench import publish
from collapse_bench.published import protocols
from collapse_bench.store import RunDir

T_975_1 = 12.706204736174698  # Student t quantile 0.975 with 1 degree of freedom (tables)


@pytest.fixture(scope="module")
def published(smoke, tmp_path_factory) -> Path:
    """A leaderboard folder with the smoke bundle published; tests that change it work on a copy."""
    lb = tmp_path_factory.mktemp("published") / "lb"
    publish.publish([smoke / "bundle.json"], lb, note=print)
    return lb


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def test_bundle_holds_every_value_and_nothing_private(smoke):
    b = bundles.load(smoke / "bundle.json")
    run = RunDir(smoke / "runs" / "grid")
    records = list(run.records())
    assert len(b.records) == len(records) == 2 * 2 * 3
    theirs = {(r["model"], r["mixer"], r["seed"], r["generation"]): r["scores"] for r in records}
    assert all(theirs[(r.model, r.mixer, r.seed, r.generation)] == r.scores for r in b.records)
    assert b.protocol.name == "smoke" and b.protocol.fingerprint == run.manifest()["fingerprint"]
    for name in (RunDir.MANIFEST, RunDir.RECORDS, RunDir.SAMPLES):
        assert b.runs[0].files_sha256[name] == hashlib.sha256((run.path / name).read_bytes()).hexdigest()
    assert {p.kind for p in b.runs[0].plugins} >= {"dataset", "model", "mixer", "metric"}
    assert all(p.distribution == "collapse-bench" for p in b.runs[0].plugins)
    assert len(b.samples) == 12 and all(1 <= len(s.rows) <= bundles.SAMPLES_PER_GENERATION for s in b.samples)
    text = (smoke / "bundle.json").read_text()
    assert str(smoke) not in text and str(Path.home()) not in text and socket.gethostname() not in text
    assert "command" not in json.loads(text)["runs"][0]


def test_public_cuts_absolute_paths():
    assert bundles.public("hf:path=/home/ann/ckpt/tiny") == "hf:path=tiny"
    assert bundles.public("text-files:path=corpus.txt") == "text-files:path=corpus.txt"


def test_publish_regenerates_and_check_finds_stale_files(smoke, tmp_path, cli):
    lb = tmp_path / "lb"
    done = cli("publish", str(smoke / "bundle.json"), "--to", str(lb), cwd=smoke)
    assert done.returncode == 0, done.stderr
    for path in ("README.md", "smoke.md", "site/index.html", "site/table.js", "site/figures/smoke-values.png"):
        assert (lb / path).is_file(), path
    assert len(list((lb / "results").glob("smoke-*.json"))) == 1
    assert cli("publish", "--check", str(lb), cwd=smoke).returncode == 0
    again = cli("publish", str(smoke / "bundle.json"), "--to", str(lb), cwd=smoke)  # the same results: a no-op
    assert again.returncode == 0 and "already published" in again.stderr
    page = lb / "smoke.md"
    page.write_text(page.read_text() + "edited by hand\n")
    png = lb / "site/figures/smoke-values.png"
    png.write_bytes((lb / "site/figures/smoke-distribution.png").read_bytes())
    stale = cli("publish", "--check", str(lb), cwd=smoke)
    assert stale.returncode == 1
    assert "smoke.md" in stale.stderr and "smoke-values.png" in stale.stderr and "README.md" not in stale.stderr


def test_page_numbers_are_the_hand_computed_intervals(smoke, published):
    (p,) = protocols(published)
    s = p.standing
    b = bundles.load(smoke / "bundle.json")
    ppl = {(r.mixer, r.seed, r.generation): r.scores["perplexity"] for r in b.records}
    by = {e.mixer: e for e in s.entries}
    drifts = {m: np.array([ppl[(m, seed, 2)] / ppl[(m, seed, 0)] for seed in (0, 1)]) for m in by}
    for mixer, d in drifts.items():
        half = T_975_1 * abs(d[0] - d[1]) / 2  # n = 2: s / sqrt(n) = |d0 - d1| / 2
        assert by[mixer].ranking.mean == pytest.approx(d.mean())
        assert by[mixer].ranking.high == pytest.approx(d.mean() + half)
    diff = drifts["accumulate"] - drifts["replace"]
    assert by["accumulate"].difference.mean == pytest.approx(diff.mean())
    assert by["accumulate"].difference.low == pytest.approx(diff.mean() - T_975_1 * abs(diff[0] - diff[1]) / 2)
    assert by["replace"].difference is None  # the reference itself
    text = (published / "smoke.md").read_text()
    assert "fingerprint `" + b.protocol.fingerprint + "`" in text and "temperature 0.8" in text
    assert "95% Student t interval over seeds" in text
    table = [line for line in text.splitlines() if line.startswith("| ") and "ngram" in line][:2]
    assert len(table[0].split("|")) - 2 <= 8  # the headline table has at most 8 columns


def _bad(smoke: Path, tmp_path: Path, change) -> Path:
    data = json.loads((smoke / "bundle.json").read_text())
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


def _drop(data, keep):
    data["records"] = [r for r in data["records"] if keep(r)]


BAD = {
    "schema": (lambda d: d["records"][3].update(seed=-1), "fails the schema at records.3.seed"),
    "unknown protocol": (lambda d: d["protocol"].update(name="nosuch"), "protocol 'nosuch' is not known"),
    "fingerprint": (lambda d: d["protocol"].update(fingerprint="0123456789ab"), "does not match smoke@1.0's"),
    "incomplete": (lambda d: _drop(d, lambda r: (r["seed"], r["generation"]) != (1, 2)), "generations [2] are missing"),
    "seeds": (lambda d: _drop(d, lambda r: r["seed"] == 0), "has 1 seed(s); protocol 'smoke' needs at least 2"),
    "contradiction": (
        lambda d: d["records"][0]["scores"].update(perplexity=1.5),
        "but results/smoke-",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_bundle_is_refused_in_one_line_and_nothing_changes(smoke, published, tmp_path, case, cli):
    lb = tmp_path / "lb"
    shutil.copytree(published, lb)
    before = snapshot(lb)
    change, message = BAD[case]
    done = cli("publish", str(_bad(smoke, tmp_path, change)), "--to", str(lb), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("collapse-bench: error: ") and message in done.stderr.splitlines()[0]
    assert "Traceback" not in done.stderr
    assert snapshot(lb) == before


def test_publish_into_a_folder_that_is_not_a_leaderboard_folder(smoke, tmp_path, cli):
    (tmp_path / "notes.txt").write_text("mine\n")
    done = cli("publish", str(smoke / "bundle.json"), "--to", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2 and "is not a leaderboard folder" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_export_refuses_a_run_still_running(smoke, tmp_path, cli):
    run = tmp_path / "runs" / "busy"
    shutil.copytree(smoke / "runs" / "grid", run)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys,time; from filelock import FileLock; "
         f"l = FileLock({str(run / '.lock')!r}); l.acquire(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        done = cli("export", str(tmp_path / "runs"), "-o", str(tmp_path / "b.json"), cwd=tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 2 and "run 'busy' is still running" in done.stderr
    assert not (tmp_path / "b.json").exists()


def test_export_skips_a_damaged_run_with_a_warning(smoke, tmp_path, cli):
    for name in ("a", "b"):
        shutil.copytree(smoke / "runs" / "grid", tmp_path / "runs" / name)
    (tmp_path / "runs" / "b" / "records.jsonl").write_text('{"broken": \n{"generation": 0}\n')
    done = cli("export", str(tmp_path / "runs"), "-o", str(tmp_path / "b.json"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "warning: skipped: run " in done.stderr and "/b' is damaged" in done.stderr
    assert len(bundles.load(tmp_path / "b.json").records) == 12


def test_the_regeneration_script_publishes_two_bundles_of_one_protocol_as_one_page(tmp_path):
    # GRID=smoke publishes smoke as quick is published: two grids (ngram, categorical), two bundles, one page
    script = Path(__file__).parents[1] / "scripts" / "regenerate_leaderboards.sh"
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!--leaderboard:smoke-->\nstale table\n<!--/leaderboard-->\nend\n")
    env = {**os.environ, "GRID": "smoke", "OUT": str(tmp_path / "lb"), "RUNS": str(tmp_path / "runs")}
    env.update(EMBED=str(readme), JOBS="1")  # one worker: this grid is seconds of work
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])  # this venv's collapse-bench
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "up to date with its bundles" in done.stdout
    assert not (tmp_path / "lb.new").exists()
    assert sorted(p.name for p in (tmp_path / "runs").glob("*.json")) == [
        "smoke-categorical-2.json",
        "smoke-ngram-2.json",
    ]
    for run in ("smoke-ngram-2", "smoke-categorical-2"):  # JOBS reached the runs as --jobs
        command = json.loads((tmp_path / "runs" / run / "manifest.json").read_text())["command"]
        assert command[command.index("--jobs") + 1] == "1"
    (p,) = protocols(tmp_path / "lb")
    assert p.name == "smoke" and len(p.bundles) == 2
    cells = sorted((e.model, e.mixer, len(e.seeds)) for e in p.standing.entries)
    assert cells == [("categorical", m, 2) for m in ("accumulate", "replace")] + [
        ("ngram", m, 2) for m in ("accumulate", "replace")
    ]
    # the README's table between the markers is the page's headline table
    text = readme.read_text()
    assert text.startswith("intro\n<!--leaderboard:smoke-->\n| rank ") and text.endswith("<!--/leaderboard-->\nend\n")
    assert "stale table" not in text
    page = (tmp_path / "lb" / "smoke.md").read_text()
    embedded = text.split("<!--leaderboard:smoke-->\n")[1].split("\n<!--/leaderboard-->")[0]
    assert embedded in page and len(embedded.splitlines()) == 2 + 4


def test_an_embedded_table_out_of_date_is_found_and_a_bad_marker_refused(published, tmp_path, cli):
    readme = tmp_path / "README.md"
    readme.write_text("<!--leaderboard:smoke-->\n<!--/leaderboard-->\n")
    stale = cli("publish", "--check", str(published), "--embed", str(readme), cwd=tmp_path)
    assert stale.returncode == 1 and "README.md" in stale.stderr and f"--embed {readme}" in stale.stderr
    lb = tmp_path / "lb"
    shutil.copytree(published, lb)
    assert cli("publish", "--to", str(lb), "--embed", str(readme), cwd=tmp_path).returncode == 0
    assert cli("publish", "--check", str(lb), "--embed", str(readme), cwd=tmp_path).returncode == 0
    before = snapshot(lb)
    readme.write_text("<!--leaderboard:quick-->\n<!--/leaderboard-->\n")
    done = cli("publish", "--to", str(lb), "--embed", str(readme), cwd=tmp_path)
    assert done.returncode == 2 and "names a protocol not published here (published: smoke)" in done.stderr
    assert snapshot(lb) == before and readme.read_text() == "<!--leaderboard:quick-->\n<!--/leaderboard-->\n"


def test_the_documented_json_schema_is_the_one_validated():
    documented = json.loads((Path(__file__).parents[1] / "docs" / "bundle.schema.json").read_text())
    assert documented == bundles.Bundle.model_json_schema()
    assert documented["properties"]["schema_version"]["const"] == bundles.SCHEMA_VERSION
