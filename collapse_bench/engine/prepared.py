"""Prepared real data in the cache: a rerun reads the split and the fitted tokenizer back.

Keyed by the dataset's identity (SPEC, origin, code) and the protocol's ``[data]`` table, the
only inputs of :func:`collapse_bench.data.prepare`. Workers read the driver's entry instead of
loading and splitting the dataset again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from collapse_bench import budget
from collapse_bench.cache import Cache, digest
from collapse_bench.contexts import RealData
from collapse_bench.data import prepare
from collapse_bench.errors import DiskFullError, writing
from collapse_bench.keys import data_inputs
from collapse_bench.plan import Plan, blame

#: The array fields of :class:`RealData`, each kept as ``<name>.npy`` (``validation`` only when the data has one).
_PARTS = ("train", "test", "pool", "validation")


def data_key(plan: Plan) -> str:
    """The content address of the plan's prepared data."""
    return digest(data_inputs(plan))


def _folder(cache: Cache, key: str) -> Path:
    return cache.root / "data" / key


def _plain_fields() -> list[str]:
    """The fields of :class:`RealData` kept in ``meta.json``: all but the arrays and the tokenizer."""
    return [f.name for f in dataclasses.fields(RealData) if f.name not in (*_PARTS, "tokenizer", "truth")]


def read_prepared(cache: Cache, key: str) -> RealData | None:
    """The prepared data stored under ``key``, or ``None`` when absent or unreadable (then it is removed)."""
    folder = _folder(cache, key)
    if not (folder / "meta.json").exists():
        return None
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        arrays = {p: np.load(folder / f"{p}.npy", allow_pickle=False) for p in _PARTS if (folder / f"{p}.npy").exists()}
        tokenizer = None
        if (folder / "tokenizer.json").exists():
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        real = RealData(tokenizer=tokenizer, **arrays, **{k: meta[k] for k in _plain_fields()})
        real.truth = {k: np.asarray(v) for k, v in meta["truth"].items()}
    except Exception as exc:  # OSError, bad JSON or arrays, and whatever tokenizers raises on a bad file
        cache.log(f"cached data {key[:12]} is damaged ({exc}); preparing it again")
        shutil.rmtree(folder, ignore_errors=True)
        return None
    if any(digest_of(a) != real.hashes.get(p) for p, a in arrays.items()):
        cache.log(f"cached data {key[:12]} does not match its hashes; preparing it again")
        shutil.rmtree(folder, ignore_errors=True)
        return None
    return real


def digest_of(array: np.ndarray) -> str:
    """The hash :func:`collapse_bench.data.prepare` records for a part of the split."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _store(cache: Cache, key: str, real: RealData) -> None:
    final = _folder(cache, key)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{key[:12]}-"))
    try:
        for p in (p for p in _PARTS if getattr(real, p) is not None):
            # Through bytes: numpy's own short-write error carries no errno, so a full disk would not be named.
            buffer = io.BytesIO()
            np.save(buffer, getattr(real, p), allow_pickle=False)
            (tmp / f"{p}.npy").write_bytes(buffer.getvalue())
        if real.tokenizer is not None:
            real.tokenizer.save(str(tmp / "tokenizer.json"))
        meta = {k: getattr(real, k) for k in _plain_fields()}
        meta["truth"] = {k: np.asarray(v).tolist() for k, v in real.truth.items()}
        (tmp / "meta.json").write_text(json.dumps(meta, sort_keys=True), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_data(plan: Plan, cache: Cache | None = None, progress: Callable[[str], None] | None = None) -> RealData:
    """Load and split the dataset (or read the split back from ``cache``), then let the run refuse it.

    ``progress`` hears each step of the preparation. Mixers refuse data too small for them, and
    (with a cache) :func:`collapse_bench.budget.check` a run that cannot fit in memory or on disk,
    before the prepared data is stored, so a refused run writes nothing.
    """
    key = data_key(plan)
    if cache is not None and progress is not None:
        progress("reading the prepared data from the cache")
    real = read_prepared(cache, key) if cache is not None else None
    fresh = real is None
    if fresh:
        with blame(plan.dataset.who, "load()"):
            real = prepare(plan.dataset.make(), plan.protocol, progress)
    settle(plan, real)
    if cache is not None:
        budget.check(plan, real, cache.root)
    if fresh and cache is not None:
        try:
            with cache.lock(key), writing("cache folder", cache.root):
                _store(cache, key, real)
        except DiskFullError as exc:  # a convenience only: the run's own writes will stop it cleanly
            cache.log(f"the prepared data is not kept in the cache: {exc.cause}")
    return real


def settle(plan: Plan, real: RealData) -> None:
    """What the plan can know only once the data is split; then let every mixer refuse data too small for it."""
    if plan.protocol.samples == 0:  # one synthetic row per training row: known once the data is split
        plan.protocol = dataclasses.replace(plan.protocol, samples=len(real.train))
    for mixer in plan.mixers:
        with blame(mixer.who, "check_data()"):
            mixer.make().check_data(real, plan.protocol)
