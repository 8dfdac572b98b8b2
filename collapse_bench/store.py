"""The run directory: manifest, one record per finished (cell, generation), and samples.

Layout of ``runs/<run_id>/``:

* ``manifest.json``: resolved protocol, plugins with versions and distributions, package
  versions, git commit, seeds, data hashes, hardware, start and end times.
* ``records.jsonl``: one JSON object per (cell, generation), appended as soon as it is scored.
* ``samples.jsonl``: a few decoded synthetic rows of every (cell, generation).
* ``failures.jsonl``: one JSON object per cell that failed: error and traceback.
* ``tokenizer.json``: the run's tokenizer (text protocols).

A resumed run (or ``--retry-failed``) never empties these files first: it writes its records
into ``.resume/`` and :meth:`RunDir.commit` merges them in, each file replaced whole by a
rename, so a resume killed half-way leaves the run as it was. Records of the earlier attempt
that the new one does not write again are kept.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from collapse_bench.errors import UserError, writing

_UMASK = os.umask(0)
os.umask(_UMASK)


def write_atomic(path: Path, text: str, durable: bool = True) -> None:
    """Write ``text`` so that ``path`` holds either the old or the new content, never a torn file.

    ``durable`` also flushes it to disk before the rename, so it survives a power cut, not only
    a killed process.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give them the usual permissions
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                # A line cut short by a killed process is the last one; anything else is damage.
                if fh.read().strip():
                    raise UserError(
                        f"{path} line {number} is not valid JSON",
                        "the run directory is damaged; rerun the run into a new directory",
                    ) from None


class RunDir:
    """One run's directory: written by the run's driver, read by reports and ``load_results``."""

    MANIFEST = "manifest.json"
    RECORDS = "records.jsonl"
    SAMPLES = "samples.jsonl"
    FAILURES = "failures.jsonl"
    TOKENIZER = "tokenizer.json"
    RESERVE = ".reserve"
    #: Space held while a run writes: several times a manifest's size.
    RESERVE_BYTES = 64 * 2**10

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        #: Records of an earlier attempt, by (model, mixer, seed, generation), while resuming.
        self.kept: dict[tuple, dict[str, Any]] = {}
        self._staging: Path | None = None

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run directory for this process; a second process is refused, not blocked."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(
                f"cannot create run directory {self.path}: {exc.strerror}", "choose a writable --out"
            ) from None
        lock = FileLock(str(self.path / ".lock"), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise UserError(
                f"another collapse-bench process is writing {self.path}",
                "wait for it to finish, or give this run another --run-id",
            ) from None
        try:
            yield
        finally:
            lock.release()

    def begin_attempt(
        self,
        config: dict[str, Any],
        retry: bool = False,
        normalise: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
    ) -> bool:
        """Validate this directory for a new attempt at ``config``.

        Returns whether an earlier attempt is resumed: an unfinished run of the same
        configuration (or, with ``retry``, a run with failed cells) keeps its records in place and
        in :attr:`kept`; new ones go aside until :meth:`commit`. ``normalise`` turns the stored
        configuration into the form ``config`` has (a manifest written by an older version lacks
        fields added since), or into ``None`` when it cannot be compared. Call it while holding
        :meth:`lock`.
        """
        if not (self.path / self.MANIFEST).exists():  # a new run (``--retry-failed`` checked it exists)
            orphans = [n for n in (self.RECORDS, self.SAMPLES, self.FAILURES) if (self.path / n).exists()]
            if orphans:
                raise UserError(
                    f"{self.path} holds {orphans[0]} but no {self.MANIFEST}, so it cannot be resumed or added to",
                    "choose another --run-id (or move that directory's files away)",
                )
            return False
        manifest = self.manifest()
        stored = manifest.get("config")
        if normalise is not None and isinstance(stored, dict):
            stored = normalise(stored)
        if json.loads(json.dumps(stored)) != json.loads(json.dumps(config)):
            raise UserError(
                f"{self.path} holds a run with another configuration",
                "choose another --run-id, or repeat that run's own command",
            )
        if retry and not any(True for _ in self.failures()):
            raise UserError(f"{self.path} has no failed cells", "nothing to retry; `collapse-bench show` it")
        if manifest.get("status") == "complete" and not retry:
            raise UserError(
                f"{self.path} already holds a complete run", "choose another --run-id, or `collapse-bench show` it"
            )
        self.kept = {record_key(r): r for r in self.records()}
        self._staging = self.path / ".resume"
        shutil.rmtree(self._staging, ignore_errors=True)  # what a killed resume left: never merged
        self._staging.mkdir()
        return True

    def commit(self) -> None:
        """Merge what a resumed attempt wrote aside into the run's files; a no-op otherwise.

        Records and samples of the new attempt replace those of the same (cell, generation);
        the others are kept. An old failure is kept unless its cell failed again or got past
        the generation where it failed. Each file is replaced whole, atomically.
        """
        if self._staging is None:
            return
        new = {name: list(_read_jsonl(self._staging / name)) for name in (self.RECORDS, self.SAMPLES, self.FAILURES)}
        records = _merge(list(self.records()), new[self.RECORDS])
        samples = _merge(list(self.samples()), new[self.SAMPLES])
        reached: dict[tuple, int] = {}
        for r in records:
            cell = record_key(r)[:3]
            reached[cell] = max(reached.get(cell, -1), r["generation"])
        failed_again = {record_key(f)[:3] for f in new[self.FAILURES]}
        failures = [
            f
            for f in self.failures()
            if record_key(f)[:3] not in failed_again and reached.get(record_key(f)[:3], -1) < f["generation"]
        ] + new[self.FAILURES]
        for name, rows in ((self.RECORDS, records), (self.SAMPLES, samples), (self.FAILURES, failures)):
            if rows:
                write_atomic(self.path / name, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
            else:
                (self.path / name).unlink(missing_ok=True)
        shutil.rmtree(self._staging, ignore_errors=True)
        self._staging = None

    def manifest(self) -> dict[str, Any]:
        """The run's manifest."""
        path = self.path / self.MANIFEST
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"cannot read {path}: {exc}", "point at a complete run directory") from None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Replace the manifest atomically."""
        with writing("run directory", self.path):
            write_atomic(self.path / self.MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    def append(self, name: str, obj: dict[str, Any]) -> None:
        """Append one JSON line and hand it to the OS, so a killed process loses nothing finished.

        A line that cannot be written whole (a full disk) is cut off again, so the file never
        holds a torn line that a later append would bury in the middle.
        """
        data = (json.dumps(obj, sort_keys=True) + "\n").encode("utf-8")
        with writing("run directory", self.path):
            fd = os.open((self._staging or self.path) / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                start = os.fstat(fd).st_size
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                except BaseException:
                    os.ftruncate(fd, start)
                    raise
            finally:
                os.close(fd)

    @contextmanager
    def reserve(self) -> Iterator[None]:
        """Hold some disk space while the run writes, so its manifest can still be stamped on a full disk.

        The space is given back by :meth:`release` (call it before stamping the manifest after a
        failed write) and when the block ends.
        """
        path = self.path / self.RESERVE
        try:
            try:
                path.write_bytes(b"\0" * self.RESERVE_BYTES)
            except OSError:  # no room even for this: the run's first write will say so
                self.release()
            yield
        finally:
            self.release()

    def release(self) -> None:
        """Give back the space held by :meth:`reserve`."""
        (self.path / self.RESERVE).unlink(missing_ok=True)

    def records(self) -> Iterator[dict[str, Any]]:
        """Every (cell, generation) record written so far, each once (the last written wins)."""
        return iter(_merge(list(_read_jsonl(self.path / self.RECORDS)), []))

    def failures(self) -> Iterator[dict[str, Any]]:
        """Every cell that failed, with its error and traceback."""
        return _read_jsonl(self.path / self.FAILURES)

    def samples(self) -> Iterator[dict[str, Any]]:
        """Every (cell, generation) sample excerpt written so far, each once (the last written wins)."""
        return iter(_merge(list(_read_jsonl(self.path / self.SAMPLES)), []))


def record_key(record: dict[str, Any]) -> tuple:
    """(model, mixer, seed, generation) of a record, sample excerpt or failure.

    A line that is not a JSON object gets a key of its own, so it is kept for validation to name.
    """
    if not isinstance(record, dict):
        return ("not a record", id(record))
    return tuple(record.get(k) for k in ("model", "mixer", "seed", "generation"))


def _merge(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``old`` then ``new``, one entry per (cell, generation): a later one replaces an earlier in its place."""
    merged: dict[tuple, dict[str, Any]] = {}
    for row in [*old, *new]:
        merged[record_key(row)] = row
    return list(merged.values())
