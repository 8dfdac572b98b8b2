"""Hardening (issue 10): full disks, signals, damaged runs, no home directory, and bad inputs.

Everything is done for real: `collapse-bench` subprocesses, real signals, real small disks (a
tmpfs where this machine lets us mount one, else a file-size limit), real corrupted files.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import pytest

GRID = ["--protocol", "smoke", "--generations", "8", "--seeds", "2", "--mixer", "replace", "--mixer", "accumulate"]
SMOKE = (Path(__file__).parent.parent / "collapse_bench/protocols/smoke.toml").read_text()


def start(*args: str, cwd: Path, env: dict | None = None, preexec=None, wrap=()) -> subprocess.Popen:
    """``collapse-bench ARGS`` in a subprocess; ``env`` values of ``None`` unset a variable."""
    environment = {**os.environ, "COLLAPSE_BENCH_CACHE": str(cwd / "cache"), "PYTHONUNBUFFERED": "1", **(env or {})}
    environment = {k: v for k, v in environment.items() if v is not None}
    return subprocess.Popen(
        [*wrap, sys.executable, "-c", "from collapse_bench.cli import main; main()", *args],
        cwd=cwd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=preexec,
    )  # fmt: skip


def cb(*args: str, cwd: Path, env: dict | None = None, preexec=None, wrap=()) -> subprocess.CompletedProcess:
    proc = start(*args, cwd=cwd, env=env, preexec=preexec, wrap=wrap)
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def scores(rundir: Path) -> dict:
    out = {}
    for line in (rundir / "records.jsonl").read_text().splitlines():
        rec = json.loads(line)
        out[(rec["model"], rec["mixer"], rec["seed"], rec["generation"])] = rec["scores"]
    return out


def manifest(rundir: Path) -> dict:
    return json.loads((rundir / "manifest.json").read_text())


def tree(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` with a hash of its content: what "nothing changed" compares."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.name == ".lock" or p.parent.name == "locks":
            continue  # lock files are created empty by any process that looks; they hold no data
        out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def wait_for_records(proc: subprocess.Popen, records: Path, at_least: int) -> None:
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if records.exists() and len(records.read_text().splitlines()) >= at_least:
            return
        time.sleep(0.005)
    raise AssertionError("the run ended before it could be disturbed")


@contextmanager
def small_disk(path: Path, size: str):
    """A real tmpfs of ``size`` at ``path``, or a skip where this machine refuses to mount one."""
    path.mkdir(parents=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.decode().strip()}); the file-size limit test covers it")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


@contextmanager
def read_only(path: Path):
    """Make ``path`` read-only for real: a read-only bind mount as root (who ignores modes), else chmod."""
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
        subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True)
        try:
            yield
        finally:
            subprocess.run(["umount", "-l", str(path)], check=True)
    else:
        modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")] if p.is_dir()}
        for p in modes:
            p.chmod(0o555)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)


def fill(disk: Path) -> Path:
    """Write a ballast file until the disk says it is full."""
    ballast = disk / "ballast"
    with ballast.open("wb") as fh:
        try:
            while True:
                fh.write(b"\1" * 2**20)
                fh.flush()
        except OSError as exc:
            assert exc.errno == 28  # ENOSPC
    return ballast


def one_clean_error(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    error = [line for line in res.stderr.splitlines() if line.startswith("collapse-bench: error:")]
    assert len(error) == 1 and "  fix: " in res.stderr, res.stderr
    return res.stderr


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """Scores of an uninterrupted run of GRID."""
    tmp = tmp_path_factory.mktemp("reference")
    res = cb("run", *GRID, "--run-id", "ref", "-q", cwd=tmp)
    assert res.returncode == 0, res.stderr
    return scores(tmp / "runs" / "ref")


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A folder holding a complete smoke run ("done") and its cache, plus files that make bad input."""
    tmp = tmp_path_factory.mktemp("template")
    assert cb("run", "--protocol", "smoke", "--run-id", "done", "-q", cwd=tmp).returncode == 0
    (tmp / "afile").write_text("not a folder")
    (tmp / "pdir.toml").mkdir()
    (tmp / "binary.toml").write_bytes(bytes(range(256)) * 4)
    (tmp / "utf16.toml").write_bytes(SMOKE.encode("utf-16"))
    (tmp / "empty").mkdir()
    (tmp / "plugs").mkdir()
    (tmp / "plugs" / "broken.py").write_text(BROKEN)
    return tmp


BROKEN = """
from collapse_bench import Dataset, hookimpl


class Broken(Dataset):
    \"\"\"A dataset whose load() raises.\"\"\"

    name = "broken"
    modality = "text"

    def load(self):
        raise RuntimeError("the broken dataset broke")


@hookimpl
def register_datasets(register):
    register(Broken)
"""


# --- hole 3: a full disk ------------------------------------------------------------------------


@pytest.mark.parametrize("full", ["run directory", "cache folder"])
def test_a_full_disk_stops_the_run_cleanly_and_the_same_command_finishes_it(tmp_path, reference, full):
    with small_disk(tmp_path / "disk", "210m") as disk:
        out, cache = (disk / "runs", tmp_path / "cache") if full == "run directory" else (tmp_path / "runs", disk)
        args = ["run", *GRID, "--run-id", "r", "--out", str(out), "-q"]
        proc = start(*args, cwd=tmp_path, env={"COLLAPSE_BENCH_CACHE": str(cache)})
        wait_for_records(proc, out / "r" / "records.jsonl", 3)
        ballast = fill(disk)
        _, err = proc.communicate(timeout=600)
        res = subprocess.CompletedProcess(args, proc.returncode, "", err)
        text = one_clean_error(res)
        where = out / "r" if full == "run directory" else cache
        assert f"the disk of the {full} '{where}' is full" in text
        assert "model" not in text.split("fix:")[0]  # the disk is blamed, not the model plugin
        m = manifest(out / "r")
        assert m["status"] == "interrupted" and "is full" in m["error"]
        done = scores(out / "r")  # every line whole: nothing torn
        assert done and all(done[k] == reference[k] for k in done)
        ballast.unlink()
        again = cb(*args, cwd=tmp_path, env={"COLLAPSE_BENCH_CACHE": str(cache)})
        assert again.returncode == 0, again.stderr
        assert scores(out / "r") == reference
        assert manifest(out / "r")["status"] == "complete"


def test_a_file_size_limit_is_reported_like_a_full_disk(tmp_path, reference):
    """`ulimit -f` gives EFBIG instead of ENOSPC: the same clean stop, and the same resume."""
    args = ["run", *GRID, "--run-id", "r", "-q"]

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))

    res = cb(*args, cwd=tmp_path, preexec=limit)
    text = one_clean_error(res)
    assert "hit the file-size limit (`ulimit -f`): File too large" in text
    assert manifest(tmp_path / "runs" / "r")["status"] == "interrupted"
    again = cb(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert scores(tmp_path / "runs" / "r") == reference


# --- hole 4: a damaged run ----------------------------------------------------------------------


def _truncate_manifest(run: Path) -> None:
    (run / "manifest.json").write_text((run / "manifest.json").read_text()[:300])


def _bad_middle_line(run: Path) -> None:
    lines = (run / "records.jsonl").read_text().splitlines()
    lines[2] = lines[2][:40]
    (run / "records.jsonl").write_text("\n".join(lines) + "\n")


def _manifest_without(key: str):
    def damage(run: Path) -> None:
        m = manifest(run)
        del m[key]
        (run / "manifest.json").write_text(json.dumps(m))

    return damage


def _record_without_scores(run: Path) -> None:
    lines = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    del lines[1]["scores"]
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (_truncate_manifest, "manifest.json cannot be read"),
        (_bad_middle_line, "records.jsonl line 3 is not valid JSON"),
        (_manifest_without("fingerprint"), "manifest.json has no 'fingerprint'"),
        (_record_without_scores, "records.jsonl record 2 has no valid 'scores'"),
    ],
)
def test_a_damaged_run_is_skipped_with_a_warning_and_named_by_show(tmp_path, template, damage, said):
    from collapse_bench import load_results

    shutil.copytree(template / "runs" / "done", tmp_path / "runs" / "good")
    alone = cb("leaderboard", "runs/good", cwd=tmp_path)
    shutil.copytree(tmp_path / "runs" / "good", tmp_path / "runs" / "bad")
    damage(tmp_path / "runs" / "bad")

    board = cb("leaderboard", "runs", cwd=tmp_path)
    assert board.returncode == 0 and "Traceback" not in board.stderr
    assert board.stdout == alone.stdout  # the good run's board, whole
    assert f"collapse-bench: warning: skipped: run 'runs/bad' is damaged: {said}" in board.stderr

    strict = one_clean_error(cb("leaderboard", "runs", "--strict", cwd=tmp_path))
    assert f"is damaged: {said}" in strict
    shown = one_clean_error(cb("show", "runs/bad", cwd=tmp_path))
    assert f"run 'runs/bad' is damaged: {said}" in shown

    with pytest.warns(UserWarning, match=said):  # a DamagedRunWarning
        df = load_results(tmp_path / "runs")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        good = load_results(tmp_path / "runs" / "good")
    assert df.equals(good)


# --- hole 5: signals and environments -----------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_interrupt_like_ctrl_c_and_the_same_command_resumes(tmp_path, reference, signum):
    args = ["run", *GRID, "--run-id", "r", "-q"]
    proc = start(*args, cwd=tmp_path)
    wait_for_records(proc, tmp_path / "runs" / "r" / "records.jsonl", 5)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err and f"interrupted ({signal.Signals(signum).name})" in err
    m = manifest(tmp_path / "runs" / "r")
    assert m["status"] == "interrupted" and m["error"] == f"stopped by {signal.Signals(signum).name}"
    again = cb(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert scores(tmp_path / "runs" / "r") == reference


def without_passwd_entry(tmp_path: Path) -> list[str]:
    """A command prefix that runs its command where this user has no passwd entry (as in many containers).

    A private mount namespace gets an /etc/passwd without the user and name service "files" only;
    needs root and ``unshare``, else the test is skipped.
    """
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare to hide the passwd entry")
    me = str(os.getuid())
    passwd, nss = tmp_path / "passwd", tmp_path / "nsswitch.conf"
    passwd.write_text("".join(line + "\n" for line in Path("/etc/passwd").read_text().splitlines()
                              if line.split(":")[2:3] != [me]))  # fmt: skip
    nss.write_text("passwd: files\ngroup: files\n")
    script = 'mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/nsswitch.conf && shift 2 && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(passwd), str(nss)]


def test_no_home_and_no_passwd_entry_caches_under_the_temporary_directory(tmp_path):
    from collapse_bench.builtin.datasets import Shakespeare

    wrap = without_passwd_entry(tmp_path)
    env = {"HOME": None, "COLLAPSE_BENCH_CACHE": None, "XDG_CACHE_HOME": None, "HF_HOME": None}
    probe = subprocess.run(
        [*wrap, sys.executable, "-c", "import pathlib; pathlib.Path.home()"],
        capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "HOME"},
    )  # fmt: skip
    assert "Could not determine home directory" in probe.stderr  # the environment is what the issue describes
    work, temp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    temp.mkdir()
    (work / "corpus").mkdir()
    (work / "corpus" / "plays.txt").write_text("\n\n".join(Shakespeare(genres="roman").load()))
    args = ["run", "--protocol", "smoke", "--dataset", "hf:path=corpus", "--run-id", "h", "-q"]
    res = cb(*args, cwd=work, env={**env, "TMPDIR": str(temp)}, wrap=wrap)
    assert res.returncode == 0, res.stderr
    root = temp / f"collapse-bench-cache-{os.getuid()}"
    assert f"no home directory (HOME is unset and the user has no passwd entry): caching in {root}" in res.stderr
    assert len(list((root / "steps").glob("*/*"))) == 5  # generation 0 + 2 mixers x 2 later generations
    assert (root / "huggingface").is_dir()  # the datasets library's cache went there too
    assert sorted(p.name for p in work.iterdir()) == ["corpus", "runs"]  # no folder named "~"
    from collapse_bench.cache import homeless_root

    assert homeless_root() == Path(tempfile.gettempdir()) / f"collapse-bench-cache-{os.getuid()}"


def test_prune_of_a_read_only_cache_says_it_removed_nothing(tmp_path):
    assert cb("run", "--protocol", "smoke", "-q", cwd=tmp_path).returncode == 0
    before = tree(tmp_path / "cache")
    with read_only(tmp_path / "cache"):
        res = cb("cache", "prune", "--all", cwd=tmp_path)
    text = one_clean_error(res)
    assert f"could not remove cached steps from {tmp_path / 'cache'}" in text
    assert "0 step(s) removed, 0.0 MiB freed" in text
    assert "removed 5" not in res.stdout + res.stderr
    assert tree(tmp_path / "cache") == before


# --- hole 7 and more: bad inputs, each one clean line, exit 2, nothing changed -------------------


def protocol(old: str, new: str) -> str:
    assert old in SMOKE
    return SMOKE.replace(old, new)


BAD = [
    # from the issue
    (["run", "-p", "pdir.toml"], {}, "is a folder"),
    (["run", "-p", "binary.toml"], {}, "is not UTF-8 text"),
    (["leaderboard", "runs", "--out", "afile/board.md"], {}, "cannot write 'afile/board.md'"),
    (["run", "--run-id", "../elsewhere"], {}, "--run-id '../elsewhere' is not a plain name"),
    (["run", "--run-id", "/abs/path"], {}, "--run-id '/abs/path' is not a plain name"),
    (
        ["run", "--retry-failed", "runs/done", "--seeds", "5", "--model", "categorical"],
        {},
        "--model, --seeds would change it",
    ),
    (["run", "-p", "p.toml"], {"p.toml": protocol("samples = 256", "samples = 1000000000000")}, "of memory"),
    (["run", "-p", "p.toml"], {"p.toml": protocol("split_seed = 0", "split_seed = -1")}, "setting 'split_seed' is -1"),
    # beyond the issue
    (["run", "-p", "utf16.toml"], {}, "is not UTF-8 text"),
    (["run", "--run-id", ".."], {}, "not a plain name"),
    (["run", "--run-id", ".hidden"], {}, "not a plain name"),
    (["run", "--run-id", ""], {}, "not a plain name"),
    (["run", "--retry-failed", "runs/done", "--out", "elsewhere"], {}, "--out would change it"),
    (["run", "--retry-failed", "runs/done", "-p", "quick"], {}, "--protocol would change it"),
    (["run", "--retry-failed", "runs/done"], {}, "has no failed cells"),
    (["run", "--retry-failed", "afile"], {}, "collapse-bench run --help"),
    (["run", "--model", ""], {}, "empty component name"),
    (["run", "--model", "ngram:order"], {}, "is not key=value"),
    (["run", "--model", "ngram:order=3.5"], {}, "not a valid int"),
    (["run", "--mixer", "nope"], {}, "unknown mixer 'nope'"),
    (["run", "--metric", "nope"], {}, "unknown metric 'nope'"),
    (["run", "--dataset", "nope"], {}, "unknown dataset 'nope'"),
    (["run", "--cache", "afile"], {}, "is a file"),
    (["run", "--cache", "afile/cache"], {}, "is not a folder"),
    (["run", "--out", "afile"], {}, "collapse-bench run --help"),
    (["run", "-p", "smoke", "--generations", "100000000", "--seeds", "1000"], {}, "of memory"),
    (["run", "--generations", "1"], {}, "collapse-bench run --help"),
    (["run", "-p", "smoke", "--seeds", "99999999999999999999"], {}, "setting 'seeds' is 99999999999999999999"),
    (["run", "-p", "smoke", "--set", "seeds=9999999999"], {}, "from 1 to 10,000"),
    (["run", "-p", "smoke", "--set", "data.vocab_size=1"], {}, "256 or more"),
    # two instances of one metric would write the same values, one silently over the other
    (
        ["run", "-p", "smoke", "--metric", "reference-perplexity", "--metric", "reference-perplexity:skip_first=true"],
        {},
        "both report 'reference-perplexity.mean'",
    ),
    (
        ["run", "-p", "p.toml"],
        {"p.toml": protocol("generations = 3", "generations = 1")},
        "setting 'generations' is 1",
    ),
    (["run", "-p", "p.toml"], {"p.toml": protocol('version = "1.0"', 'version = "one"')}, "major number"),
    (["run", "-p", "p.toml"], {"p.toml": "frobnicate = 1\n" + SMOKE}, "has no setting 'frobnicate'"),
    (["run", "-p", "p.toml"], {"p.toml": SMOKE + "\nfrobnicate = 1\n"}, "[leaderboard] has no setting 'frobnicate'"),
    (["run", "-p", "p.toml"], {"p.toml": protocol("test_fraction = 0.1", "test_fraction = 1.5")}, "test_fraction"),
    (["run", "-p", "p.toml"], {"p.toml": protocol('by = "drift"', 'by = "best"')}, "choose one of: drift, last"),
    (["run", "-p", "p.toml"], {"p.toml": protocol("samples = 256", "samples = -1")}, "setting 'samples' is -1"),
    (["run", "-p", "p.toml"], {"p.toml": protocol("seeds = 1", "seeds = -1")}, "setting 'seeds' is -1"),
    (["run", "-p", "p.toml"], {"p.toml": protocol("train_size = 256", "train_size = 100000000")}, "needs"),
    (["run", "-p", "p.toml"], {"p.toml": protocol('name = "shakespeare"', 'name = "nope"')}, "unknown dataset"),
    (["run", "-p", "missing.toml"], {}, "does not exist"),
    (["show", "empty"], {}, "holds no run"),
    (["show", "nowhere"], {}, "collapse-bench show --help"),
    (["leaderboard", "empty"], {}, "no run found"),
    (["leaderboard", "runs", "--out", "empty"], {}, "collapse-bench leaderboard --help"),
    (["cache", "prune", "--older-than", "-1"], {}, "collapse-bench cache prune --help"),
    (["cache", "prune"], {}, "--older-than DAYS or --all"),
    (["cache", "prune", "--older-than", "nan"], {}, "is not a number of days"),  # it once removed every step
    (["cache", "prune", "--older-than", "NaN", "--all"], {}, "is not a number of days"),
    (["cache", "frobnicate"], {}, "No such command"),
    (["list", "nope"], {}, "collapse-bench list --help"),
    (["plugins", "--frobnicate"], {}, "No such option"),
    (["--plugins-dir", "afile", "list"], {}, "collapse-bench --help"),
    (["--plugins-dir", "plugs", "run", "-p", "smoke", "--dataset", "broken"], {}, "the traceback is in /"),
]


@pytest.mark.parametrize(("args", "files", "expect"), BAD, ids=[" ".join(a) for a, _, _ in BAD])
def test_bad_input_is_refused_in_one_line_and_changes_nothing(tmp_path, template, args, files, expect):
    work = tmp_path / "w"
    shutil.copytree(template, work, symlinks=True)
    for name, text in files.items():
        (work / name).write_text(text)
    before = tree(work)
    text = one_clean_error(cb(*args, cwd=work))
    assert expect in text, text
    assert tree(work) == before
    if "the traceback is in" in expect:  # a plugin raised before any cell: its traceback is kept, and named
        saved = Path(text.split("the traceback is in ")[1].split()[0])
        assert "RuntimeError: the broken dataset broke" in saved.read_text()
        assert "failures.jsonl" not in text  # no run directory holds it
        saved.unlink()


def test_leaderboard_into_a_read_only_folder_is_refused_cleanly(tmp_path, template):
    work = tmp_path / "w"
    shutil.copytree(template, work)
    (work / "boards").mkdir()
    before = tree(work)
    with read_only(work / "boards"):
        text = one_clean_error(cb("leaderboard", "runs", "--out", "boards/b.md", cwd=work))
    assert "cannot write 'boards/b.md': Read-only file system" in text or "Permission denied" in text
    assert tree(work) == before
