"""Reading a user's own corpus: which files are data, how their bytes become text, what one document is.

Used by the ``text-files`` dataset. Every fault names the file and says what to change: a
decoding error gives the encoding, the byte and its position; a binary file is recognised by
its NUL bytes; paths are paths (``[ ] * ? { }`` in a name are just characters) and a glob is
applied only where the user gives one, relative to the folder.
"""

from __future__ import annotations

import codecs
import encodings
import gzip
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from collapse_bench.errors import ConfigError, DataError

#: Names that folders hold besides data: system files, editor and notebook leftovers.
CLUTTER = {"__MACOSX", "__pycache__", "Thumbs.db", "desktop.ini", "Desktop.ini"}
#: Byte-order marks, longest first (a UTF-32 LE mark begins like a UTF-16 LE one).
BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
]
SampleBy = Literal["document", "paragraph", "line", "chunk"]
Format = Literal["auto", "text", "json", "parquet"]
#: One or more lines holding nothing but whitespace: what separates paragraphs.
_BLANK_LINES = re.compile(r"\n(?:[^\S\n]*\n)+")


def clutter(relative: Path) -> bool:
    """Whether a file found in a folder is not data: hidden (``.DS_Store``, ``.ipynb_checkpoints/``,
    ``.git/``), a system file (``Thumbs.db``, ``__MACOSX/``) or an editor backup (``name~``)."""
    return any(part.startswith(".") or part in CLUTTER for part in relative.parts) or relative.name.endswith("~")


@dataclass
class Found:
    """The files to read, and what was left out and why."""

    files: list[Path]
    skipped: list[str] = field(default_factory=list)


def find(path: str, pattern: str | None) -> Found:
    """The data files at ``path``: that file, or the files under that folder (all, or those matching ``pattern``)."""
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(
            f"text-files found no file or folder at {path!r}",
            "give an existing file or folder as path= (a glob goes in its own parameter: path=DIR,glob=*.txt)",
        )
    if root.is_file():
        if pattern is not None:
            raise ConfigError(f"text-files glob={pattern!r} needs a folder, but {path!r} is a file", "remove glob=")
        return Found([root])
    found = Found([])
    for f in sorted(root.glob(pattern) if pattern else root.rglob("*")):
        if not f.is_file():
            continue
        relative = f.relative_to(root)
        (found.skipped if clutter(relative) else found.files).append(relative.as_posix() if clutter(relative) else f)
    if not found.files:
        matching = f" matching glob={pattern!r}" if pattern else ""
        left = f" (skipped as not data: {', '.join(found.skipped[:5])})" if found.skipped else ""
        fix = (
            f"change glob= (matched against paths inside {path!r}; **/ reaches into subfolders: glob=**/*.txt)"
            if pattern
            else "give a folder holding text files"
        )
        raise DataError(f"text-files found no data file in folder {path!r}{matching}{left}", fix)
    return found


def file_format(file: Path, format: Format) -> str:
    """``format``, or for ``auto`` the format the suffix says (a ``.gz`` suffix is looked through)."""
    if format != "auto":
        return format
    suffixes = [s.lower() for s in file.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    last = suffixes[-1] if suffixes else ""
    return {".json": "json", ".jsonl": "json", ".ndjson": "json", ".parquet": "parquet"}.get(last, "text")


def read_bytes(file: Path) -> bytes:
    """The file's bytes, decompressed if its name ends in ``.gz``."""
    data = file.read_bytes()
    if file.suffix.lower() != ".gz":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise DataError(f"text-files cannot decompress {file}: {exc}", "give an intact .gz file or remove it") from None


def check_encoding(encoding: str) -> str:
    """The codec's canonical name, or a ``ConfigError`` for a name that is not a standard text encoding.

    Asks the standard library's codec table directly: some installed packages register a codec
    search function that answers to any name.
    """
    info = encodings.search_function(encoding.lower())
    if info is None or not getattr(info, "_is_text_encoding", True):
        raise ConfigError(
            f"text-files has no text encoding {encoding!r}", "give a Python codec name, e.g. utf-8, latin-1, cp1252"
        )
    return codecs.lookup(info.name).name


def decode(data: bytes, encoding: str, file: Path) -> str:
    """``data`` as text, with newlines as ``\\n``.

    For a UTF encoding (the default ``utf-8`` included) a byte-order mark decides between UTF-8,
    UTF-16 and UTF-32 and is removed; other encodings decode exactly as named.
    """
    codec = check_encoding(encoding)
    if codec.startswith("utf"):
        for bom, name in BOMS:
            if data.startswith(bom):
                data, codec = data[len(bom) :], name
                break
    nul = -1 if codec.startswith(("utf-16", "utf-32")) else data.find(0)
    if nul >= 0:
        raise DataError(
            f"text-files: {file} holds a NUL byte at position {nul}, so it is binary or "
            "UTF-16/UTF-32 without a byte-order mark",
            "remove it from the data (or read only text files: path=FOLDER,glob=*.txt), "
            "or give its encoding, e.g. encoding=utf-16-le",
        )
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"text-files cannot decode {file} as {codec}: byte 0x{data[exc.start]:02x} at position {exc.start} "
            f"(line {line}): {exc.reason}",
            "give the file's encoding, e.g. encoding=latin-1 or encoding=cp1252 (Windows), encoding=utf-16",
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def chunks(text: str, size: int) -> list[str]:
    """``text`` cut into pieces of at most ``size`` characters, each cut at the last whitespace
    in the second half of its window if there is one (else exactly at ``size``: text without spaces)."""
    out: list[str] = []
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            space = max(text.rfind(c, start + size // 2, end) for c in " \n\t")
            end = space + 1 if space >= 0 else end
        piece = text[start:end].strip()
        if piece:
            out.append(piece)
        start = end
    return out


def split(text: str, sample_by: SampleBy, chunk_chars: int) -> list[str]:
    """The documents of one plain-text file (see ``TextFiles``)."""
    if sample_by == "paragraph":
        pieces = _BLANK_LINES.split(text)
    elif sample_by == "line":
        pieces = text.split("\n")
    elif sample_by == "chunk":
        return chunks(text, chunk_chars)
    else:
        pieces = [text]
    return [p.strip() for p in pieces if p.strip()]


def records(text: str, column: str, file: Path) -> list[Any]:
    """The ``column`` values of a JSON-lines file (or of a JSON file holding one array of objects)."""
    stripped = text.lstrip()
    try:
        if stripped.startswith("["):
            rows = json.loads(stripped)
        else:
            rows = [json.loads(line) for line in text.split("\n") if line.strip()]
    except json.JSONDecodeError as exc:
        raise DataError(
            f"text-files cannot parse {file} as JSON lines: {exc}", "give one JSON object per line, or format=text"
        ) from None
    keys = next((list(r) for r in rows if isinstance(r, dict)), [])
    if rows and column not in keys:
        raise DataError(f"{file} has no field {column!r}", f"set column= to one of: {', '.join(keys) or '(none)'}")
    return [r.get(column) if isinstance(r, dict) else None for r in rows]


def parquet_column(data: bytes, column: str, file: Path) -> list[Any]:
    """One column of a parquet file."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise DataError(f"text-files cannot read {file} as parquet: {exc}", "give an intact file, or format=") from None
    if column not in table.column_names:
        raise DataError(f"{file} has no column {column!r}", f"set column= to one of: {', '.join(table.column_names)}")
    return table.column(column).to_pylist()
