"""The result bundle: a run's results as one validated, versioned JSON file, the unit of submission.

A bundle holds what a leaderboard needs and nothing private: the protocol (name, version,
fingerprint, its result-shaping settings), every plugin with its distribution and version, package
versions and the git commit, every value of every seed and generation, a few decoded samples per
generation, and SHA-256 hashes of the run files it came from. No absolute path, host name or
command line. The schema is the pydantic model :class:`Bundle` (``docs/results.md`` documents it;
``Bundle.model_json_schema()`` prints it as JSON Schema).
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from collapse_bench import views
from collapse_bench.errors import UserError
from collapse_bench.store import RunDir

SCHEMA_VERSION = 1
#: Decoded samples kept per (cell, generation): enough to watch text degrade, small enough to publish.
SAMPLES_PER_GENERATION = 2
#: Characters kept of each sample.
SAMPLE_CHARS = 400


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="strings")


class Plugin(_Strict):
    """A component the run used, and the package that provided it."""

    kind: str
    spec: str
    plugin: str
    distribution: str | None
    version: str | None
    inputs_sha256: str | None = None  # digest of the files the component declared it reads (not their paths)


class ProtocolInfo(_Strict):
    """The protocol the results were measured under."""

    name: str
    version: str
    fingerprint: str = Field(pattern=r"^[0-9a-f]{12}$")
    settings: dict[str, Any]  # the resolved protocol, as in the run's manifest, less where its file was


class RunInfo(_Strict):
    """One run the bundle was exported from, and the hashes that tie the bundle to its files."""

    run_id: str
    status: str
    started: str | None
    ended: str | None
    git_commit: str | None
    packages: dict[str, str | None]
    plugins: list[Plugin]
    data_hashes: dict[str, str]
    hardware: dict[str, Any]
    files_sha256: dict[str, str]  # run file name -> SHA-256 of its bytes


class Record(_Strict):
    """Every value of one cell at one generation."""

    model: str
    mixer: str
    seed: int = Field(ge=0)
    generation: int = Field(ge=0)
    scores: dict[str, float]


class Samples(_Strict):
    """A few decoded synthetic rows of one cell at one generation."""

    model: str
    mixer: str
    seed: int = Field(ge=0)
    generation: int = Field(ge=0)
    rows: list[str]


class Bundle(_Strict):
    """A result bundle (schema version 1)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    created: str
    collapse_bench: str | None
    protocol: ProtocolInfo
    directions: dict[str, Literal["higher", "lower", ""]]
    ranking: str  # the value that ranks the entries
    columns: list[str]  # the values leaderboards show beside the ranking value, in order
    runs: list[RunInfo] = Field(min_length=1)
    records: list[Record] = Field(min_length=1)
    samples: list[Samples]

    @property
    def entries(self) -> list[tuple[str, str]]:
        """The (model, mixer) entries the bundle holds."""
        return sorted({(r.model, r.mixer) for r in self.records})


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_ABSOLUTE = re.compile(r"(?:[A-Za-z]:)?[/\\][^\s:,=]*[/\\]([^\s/\\:,=]+)")


def public(text: str) -> str:
    """``text`` with every absolute path cut to its last part: a bundle names no folder of the machine."""
    return _ABSOLUTE.sub(r"\1", text)


def _running(run: RunDir) -> bool:
    """Whether a process holds the run directory now (its lock, not the manifest's word, decides)."""
    from filelock import FileLock, Timeout

    if not (run.path / ".lock").exists():
        return False
    lock = FileLock(str(run.path / ".lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return True
    lock.release()
    return False


def _plugin(entry: dict[str, Any]) -> Plugin:
    """A manifest's plugin entry, public: paths cut from the SPEC, declared input files by digest only."""
    return Plugin(
        kind=entry["kind"],
        spec=public(entry["spec"]),
        plugin=entry["plugin"],
        distribution=entry.get("distribution"),
        version=entry.get("version"),
        inputs_sha256=(entry.get("dependencies") or {}).get("sha256"),
    )


def _run_info(run: RunDir, manifest: dict[str, Any]) -> RunInfo:
    files = {n: sha256(run.path / n) for n in (RunDir.MANIFEST, RunDir.RECORDS, RunDir.SAMPLES)}
    hw = manifest.get("hardware") or {}
    return RunInfo(
        run_id=manifest["run_id"],
        status=manifest.get("status", ""),
        started=manifest.get("started"),
        ended=manifest.get("ended"),
        git_commit=manifest.get("git_commit"),
        packages=manifest.get("packages", {}),
        plugins=[_plugin(p) for p in manifest.get("plugins", [])],
        data_hashes=(manifest.get("data") or {}).get("hashes", {}),
        hardware={k: hw.get(k) for k in ("machine", "cpus", "memory_bytes")},
        files_sha256=files,
    )


def export(paths: Sequence[Path | str]) -> Bundle:
    """One bundle from the runs at or below ``paths``; a damaged run is skipped with a warning.

    All runs must share one protocol fingerprint; a run that a process still writes is refused.
    """
    from collapse_bench import __version__
    from collapse_bench.results import DamagedRunWarning, damaged, find_runs

    runs, records, samples, manifests = [], {}, {}, []
    for run in find_runs(list(paths)):  # damaged manifests and records: skipped there, with a warning
        if _running(run):
            raise UserError(
                f"run {run.path.name!r} is still running",
                "wait until it finishes, then export it (nothing was written)",
            )
        try:
            cell_samples = list(run.samples())
        except UserError as exc:  # a line of samples.jsonl that is not JSON
            warnings.warn(f"skipped: {damaged(run, exc.cause)}", DamagedRunWarning, stacklevel=2)
            continue
        manifest = run.manifest()
        info = _run_info(run, manifest)
        if manifests and manifest["fingerprint"] != manifests[0]["fingerprint"]:
            raise UserError(
                f"run {info.run_id!r} has protocol fingerprint {manifest['fingerprint']}, "
                f"{manifests[0]['run_id']!r} has {manifests[0]['fingerprint']}",
                "export the runs of each protocol into a bundle of their own",
            )
        manifests.append(manifest)
        runs.append(info)
        for rec in run.records():  # a cell run twice (a rerun): the newest record counts
            records[(rec["model"], rec["mixer"], rec["seed"], rec["generation"])] = rec["scores"]
        for rec in cell_samples:
            rows = [row[:SAMPLE_CHARS] for row in rec["rows"][:SAMPLES_PER_GENERATION]]
            samples[(rec["model"], rec["mixer"], rec["seed"], rec["generation"])] = rows
    if not runs:
        raise UserError("no readable run to export", "point at run directories that `collapse-bench run` finished")
    first = views.merge(manifests)  # the first run's protocol, every run's values and headline values
    settings = {k: v for k, v in first["protocol"].items() if k not in ("source",)}
    cell = ("model", "mixer", "seed", "generation")
    return Bundle(
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        collapse_bench=__version__,
        protocol=ProtocolInfo(
            name=settings["name"], version=settings["version"], fingerprint=first["fingerprint"], settings=settings
        ),
        directions=first["directions"],
        ranking=views.ranking(first),
        columns=views.columns(first),
        runs=runs,
        records=[Record(**dict(zip(cell, k, strict=True)), scores=v) for k, v in sorted(records.items())],
        samples=[Samples(**dict(zip(cell, k, strict=True)), rows=v) for k, v in sorted(samples.items())],
    )


def dumps(bundle: Bundle) -> str:
    """The bundle as JSON text: stable key order, so equal results give equal files."""
    return json.dumps(json.loads(bundle.model_dump_json()), indent=1, sort_keys=True) + "\n"


def load(path: Path) -> Bundle:
    """Read and validate a bundle; a file that fails the schema is refused naming the field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read bundle {str(path)!r}: {exc.strerror}", "give the path of a bundle file") from None
    try:
        return Bundle.model_validate_json(text)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise UserError(
            f"bundle {path.name!r} fails the schema at {where}: {err['msg']}",
            "export it again with `collapse-bench export` (see docs/results.md for the schema)",
        ) from None
