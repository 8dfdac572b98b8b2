"""The content-addressed artifact cache: finished steps are never computed twice.

A *step* is one trained generation: its model, its synthetic rows and its training-set size. It
is stored under the hash of everything that produced it (see :func:`collapse_bench.keys.step_key`):
the data hashes, the protocol fields that shape training and sampling, the plugins' names,
versions and parameters, the seed, the generation and, for g >= 1, the key of the step before
it and the mixer. Scores are stored per step and metric, so adding a metric to a finished run
computes only that metric.

Layout under the cache root (``$COLLAPSE_BENCH_CACHE``, else ``$XDG_CACHE_HOME/collapse-bench``,
else ``~/.cache/collapse-bench``, else, without a home directory, ``collapse-bench-cache-<uid>``
in the temporary directory)::

    steps/<k[:2]>/<key>/meta.json       what produced it, timings, SHA-256 of every file
    steps/<k[:2]>/<key>/samples.npy     S_g
    steps/<k[:2]>/<key>/model/...       whatever Model.save wrote
    steps/<k[:2]>/<key>/scores.json     every metric's (and verifier's) scores of this step, one entry per key
    steps/<k[:2]>/<key>/candidates/<n>-<sha>.npy  n candidates drawn from a shared generation 0

Every entry is written into a temporary directory and renamed into place, so a killed process
leaves either a whole entry or none. ``meta.json`` and ``scores.json`` carry the SHA-256 of their
own content (see :func:`seal`), and ``meta.json`` that of every other file: an entry or a scores
file that does not match its recorded hashes is reported, removed and recomputed, so an edited
or damaged value is never reused. A lock per key stripe makes a second process wait for a step
the first is computing instead of computing it again, and serializes writers of one step's
scores. Scores live in one file per step because small files cost a whole disk block each.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from collapse_bench.errors import UserError, writing
from collapse_bench.store import write_atomic


def home() -> Path | None:
    """The user's home directory, or ``None`` where there is none (``HOME`` unset and no passwd entry)."""
    try:
        return Path.home()
    except (RuntimeError, KeyError):
        return None


def homeless_root() -> Path:
    """The cache of a user without a home directory: a folder of their own in the temporary directory."""
    return Path(tempfile.gettempdir()) / f"collapse-bench-cache-{os.getuid()}"


def default_root() -> Path:
    """Where the cache lives unless ``--cache`` says otherwise."""
    if os.environ.get("COLLAPSE_BENCH_CACHE"):
        return Path(os.environ["COLLAPSE_BENCH_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "collapse-bench"
    user_home = home()
    return user_home / ".cache" / "collapse-bench" if user_home else homeless_root()


def adopt_homeless_defaults() -> str | None:
    """Without a home directory, keep every library's cache beside ours; return a note saying where.

    Libraries that expand ``~`` (Hugging Face ``datasets`` among them) would otherwise create a
    folder literally named ``~`` in the working directory. Call it before they are imported.
    """
    if home() is not None or os.environ.get("XDG_CACHE_HOME"):
        return None
    root = default_root()
    os.environ.setdefault("HF_HOME", str(homeless_root() / "huggingface"))
    if os.environ.get("COLLAPSE_BENCH_CACHE"):
        return None
    return (
        f"no home directory (HOME is unset and the user has no passwd entry): caching in {root} "
        "(set COLLAPSE_BENCH_CACHE to choose the folder)"
    )


def digest(obj: Any) -> str:
    """SHA-256 of a JSON-serializable object, keys sorted."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _hash_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): _file_hash(p) for p in sorted(root.rglob("*")) if p.is_file()}


def seal(body: dict[str, Any]) -> str:
    """JSON text of ``body`` carrying the SHA-256 of its own canonical form under ``"sha256"``."""
    canonical = json.dumps(body, sort_keys=True)
    return json.dumps({"sha256": hashlib.sha256(canonical.encode()).hexdigest(), **body}, sort_keys=True)


def unseal(text: str) -> dict[str, Any]:
    """The body :func:`seal` wrote; ``ValueError`` if it was edited, cut short or is not sealed."""
    data = json.loads(text)
    if not isinstance(data, dict) or "sha256" not in data:
        raise ValueError("it carries no recorded hash")
    recorded = data.pop("sha256")
    if hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest() != recorded:
        raise ValueError("its content does not match its recorded hash")
    return data


def disk_usage(paths: Any) -> tuple[int, int]:
    """(bytes the disk really holds for ``paths``, number of files): blocks, not apparent sizes.

    A 200-byte file occupies a whole block (4 KiB on most file systems), and folders take blocks
    too, so the sum of ``st_size`` can understate a cache of many small files many times over.
    """
    used = files = 0
    for p in paths:
        st = p.lstat()
        used += st.st_blocks * 512
        files += p.is_file()
    return used, files


@dataclass
class CachedStep:
    """A finished step read back from the cache; its model is loaded only when asked for."""

    path: Path
    samples: np.ndarray
    train_rows: int
    timings: dict[str, float]

    @property
    def model_dir(self) -> Path:
        """The directory ``Model.load`` restores from."""
        return self.path / "model"


class Cache:
    """Steps and scores stored by content hash under ``root``."""

    def __init__(self, root: Path | None = None, log: Callable[[str], None] = lambda _: None) -> None:
        self.root = Path(root) if root is not None else default_root()
        self.log = log

    def _dir(self, key: str) -> Path:
        return self.root / "steps" / key[:2] / key

    def lock(self, key: str) -> FileLock:
        """A lock held while one process computes the step ``key`` or adds to its scores.

        Keys share 256 lock files by their first two hex digits, so locks do not pile up; a
        process holds one at a time, so sharing can delay but never deadlock.
        """
        path = self.root / "locks" / f"{key[:2]}.lock"
        with writing("cache folder", self.root):
            path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(path))

    def load_step(self, key: str) -> CachedStep | None:
        """The step stored under ``key``, or ``None`` if absent or damaged (then it is removed)."""
        path = self._dir(key)
        meta_path = path / "meta.json"
        if not meta_path.exists():
            return None
        try:
            try:
                meta = unseal(meta_path.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise ValueError(f"meta.json: {exc}") from None
            if meta.get("key") != key:  # a sealed entry of another step, copied or moved here
                raise ValueError("meta.json belongs to another step")
            bad = [name for name, h in meta["files"].items() if _file_hash(path / name) != h]
            if bad:
                raise ValueError(f"{bad[0]} does not match its recorded hash")
            samples = np.load(path / "samples.npy", allow_pickle=False)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.log(f"cache entry {key[:12]} is damaged ({exc}); removing it and recomputing")
            shutil.rmtree(path, ignore_errors=True)
            return None
        os.utime(meta_path)  # last use, for `cache prune --older-than`
        return CachedStep(path, samples, meta["train_rows"], meta["timings"])

    def store_step(
        self,
        key: str,
        inputs: dict[str, Any],
        save_model: Callable[[Path], None],
        samples: np.ndarray,
        train_rows: int,
        timings: dict[str, float],
    ) -> None:
        """Write a finished step atomically (:meth:`load_step` reads it back)."""
        with writing("cache folder", self.root):
            final = self._dir(key)
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{key[:12]}-"))
            try:
                (tmp / "model").mkdir()
                save_model(tmp / "model")
                np.save(tmp / "samples.npy", samples, allow_pickle=False)
                meta = {
                    "key": key,
                    "inputs": inputs,
                    "train_rows": train_rows,
                    "timings": timings,
                    "files": _hash_tree(tmp),
                }
                (tmp / "meta.json").write_text(seal(meta), encoding="utf-8")
                if final.exists():  # damaged leftovers; a whole entry is never replaced (we hold the lock)
                    shutil.rmtree(final)
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise

    def _read_scores(self, key: str) -> dict[str, Any]:
        """Every metric's scores stored for step ``key``; a damaged file is reported and removed.

        A metric's record holds its values by name (a dict), a verifier's one score per candidate (a list).
        """
        path = self._dir(key) / "scores.json"
        try:
            sealed = unseal(path.read_text(encoding="utf-8"))
            if "key" not in sealed:
                raise ValueError("they do not name their step (an older version wrote them)")
            if sealed["key"] != key:  # another step's file, copied here: its hash still holds
                raise ValueError("they belong to another step")
            scores = sealed["metrics"]
            if not all(isinstance(r, dict) and isinstance(r.get("scores"), dict | list) for r in scores.values()):
                raise ValueError("an entry holds no scores")
            return scores
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            self.log(f"cached scores of step {key[:12]} are damaged ({exc}); removing them and recomputing")
            path.unlink(missing_ok=True)
            return {}

    def load_scores(self, key: str, metric_key: str) -> dict[str, Any] | None:
        """Scores of one metric for one step, or ``None`` if absent (or damaged, then removed).

        No lock is needed to read: the file is only ever replaced whole.
        """
        return self._read_scores(key).get(metric_key)

    def store_scores(self, key: str, metric_key: str, record: dict[str, Any]) -> None:
        """Keep one metric's scores for one step, next to the other metrics' scores of that step.

        Read, add and rewrite happen under the key's lock, so processes adding different metrics
        to one step at once lose none of them.
        """
        folder = self._dir(key)
        with writing("cache folder", self.root):
            folder.mkdir(parents=True, exist_ok=True)
            with self.lock(key):
                scores = self._read_scores(key)
                scores[metric_key] = record
                write_atomic(folder / "scores.json", seal({"key": key, "metrics": scores}), durable=False)

    def load_candidates(self, key: str, n: int) -> np.ndarray | None:
        """Extra candidates drawn from the model of step ``key`` (``n`` rows), or ``None``.

        Their file is named for the SHA-256 of its content, so an edited or damaged file is
        reported, removed and drawn again, never reused.
        """
        for path in (self._dir(key) / "candidates").glob(f"{n}-*.npy"):
            try:
                if not _file_hash(path).startswith(path.stem.partition("-")[2]):
                    raise ValueError("its content does not match the hash in its name")
                return np.load(path, allow_pickle=False)
            except (OSError, ValueError) as exc:
                self.log(f"cached candidates {path.name} of step {key[:12]} are damaged ({exc}); drawing them again")
                path.unlink(missing_ok=True)
        return None

    def store_candidates(self, key: str, n: int, rows: np.ndarray) -> None:
        """Keep ``n`` candidates drawn from the model of step ``key`` beside its own samples.

        Generation 0 is shared by every mixer; a mixer that over-generates draws its candidates
        from that shared model, and another mixer asking for as many reuses them.
        """
        folder = self._dir(key) / "candidates"
        buffer = io.BytesIO()  # through bytes: numpy's own short-write error would not name a full disk
        np.save(buffer, rows, allow_pickle=False)
        content = buffer.getvalue()
        name = f"{n}-{hashlib.sha256(content).hexdigest()[:16]}.npy"
        with writing("cache folder", self.root):
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{n}-", suffix=".npy")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(content)
                os.replace(tmp, folder / name)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def entries(self) -> list[Path]:
        """Every stored step directory."""
        return sorted(p for p in (self.root / "steps").glob("*/*") if p.is_dir() and not p.name.startswith("."))

    def info(self) -> dict[str, Any]:
        """Location, number of steps, disk space used (blocks, folders included) and number of files."""
        used, files = disk_usage([self.root, *self.root.rglob("*")]) if self.root.exists() else (0, 0)
        return {"root": str(self.root), "steps": len(self.entries()), "bytes": used, "files": files}

    def prune(self, older_than_days: float | None = None) -> tuple[int, int]:
        """Remove steps unused for ``older_than_days`` (all if ``None``); return (steps, bytes) removed."""
        cutoff = None if older_than_days is None else time.time() - older_than_days * 86400
        removed = freed = 0
        errors: list[OSError] = []
        for path in self.entries():
            meta = path / "meta.json"
            if cutoff is not None and meta.exists() and meta.stat().st_mtime >= cutoff:
                continue
            size = disk_usage([path, *path.rglob("*")])[0]
            try:
                shutil.rmtree(path)
            except OSError as exc:  # kept, wholly or partly: not counted as removed
                errors.append(exc)
                continue
            freed += size
            removed += 1
        for stale in (self.root / "steps").glob("*/.*"):  # temporary directories of killed writers
            if stale.stat().st_mtime < time.time() - 3600:
                shutil.rmtree(stale, ignore_errors=True)
        if errors:
            raise UserError(
                f"could not remove cached steps from {self.root}: {errors[0].strerror} ({errors[0].filename}); "
                f"{removed} step(s) removed, {freed / 2**20:.1f} MiB freed",
                "make the cache writable for this user (or prune as its owner), then prune again",
            )
        return removed, freed
