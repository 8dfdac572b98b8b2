"""A researcher's own corpus read as written: which files are data, their encodings, what a document
is, and character counts taken from the bytes of the stream (issue 15, faults 2-5 and 8; issue 16)."""

from __future__ import annotations

import codecs
import gzip
import json
import subprocess
import sys

import numpy as np
import pytest

from collapse_bench.builtin.datasets import Shakespeare, TextFiles
from collapse_bench.data import MAX_WORD_BYTES, count_chars, fit_tokenizer, prepare, token_bytes
from collapse_bench.errors import ConfigError, DataError
from collapse_bench.plugins import get_registry

#: Paragraphs of the Roman plays: enough text for the smoke protocol's split.
ROMAN = Shakespeare(genres="roman").load()


def corpus(paragraphs: list[str]) -> str:
    return "\n\n".join(paragraphs) + "\n"


def test_hidden_and_system_files_are_skipped_and_reported(tmp_path):
    text = corpus(ROMAN[:40])
    (tmp_path / "plays.txt").write_text(text)
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "plays-checkpoint.txt").write_text(text)  # a notebook's copy
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1\x00\x00\x10\x00")  # binary
    (tmp_path / "__MACOSX").mkdir()
    (tmp_path / "__MACOSX" / "._plays.txt").write_bytes(b"\x00\x05\x16\x07")
    (tmp_path / "plays.txt~").write_text(text)  # an editor's backup
    dataset = TextFiles(path=str(tmp_path))
    assert dataset.load() == ROMAN[:40]  # each document once
    report = dataset.describe()
    assert report["files_read"] == 1 and report["bytes_read"] == len(text.encode())
    assert report["skipped"] == [".DS_Store", ".ipynb_checkpoints/plays-checkpoint.txt", "__MACOSX/._plays.txt",
                                 "plays.txt~"]  # fmt: skip
    assert "4 hidden or system file(s) skipped" in report["summary"]


def test_the_manifest_and_log_say_what_was_read_and_warn_of_duplicates_across_the_split(tmp_path):
    (tmp_path / "a.txt").write_text(corpus(ROMAN))
    (tmp_path / "copy.txt").write_text(corpus(ROMAN))  # a visible copy is data: read, but warned about
    real = prepare(TextFiles(path=str(tmp_path)), get_registry().protocol("smoke"))
    source = real.describe()["source"]
    assert source["files_read"] == 2 and source["bytes_read"] == 2 * len(corpus(ROMAN).encode())
    n_test = round(0.1 * 2 * len(ROMAN))
    # every test paragraph has a twin; all but those whose twin is also in test are in training
    assert 0.8 * n_test < source["duplicate_test_documents"] <= n_test
    assert any(f"{source['duplicate_test_documents']} of {n_test} test documents" in n for n in real.notes)
    clean = prepare(TextFiles(path=str(tmp_path / "a.txt")), get_registry().protocol("smoke"))
    assert "duplicate_test_documents" not in clean.describe()["source"]


def test_paths_are_paths_and_globs_are_asked_for(tmp_path):
    for name in ("plays[1].txt", "act*2?.txt", "{a,b}.txt"):
        (tmp_path / name).write_text(f"from {name}\n")
        assert TextFiles(path=str(tmp_path / name)).load() == [f"from {name}"]
    assert len(TextFiles(path=str(tmp_path)).load()) == 3  # none left out of the folder
    (tmp_path / "notes.md").write_text("not wanted\n")
    assert TextFiles(path=str(tmp_path), glob="*].txt").load() == ["from plays[1].txt"]
    assert len(TextFiles(path=str(tmp_path), glob="**/*.txt").load()) == 3
    with pytest.raises(ConfigError, match="needs a folder"):
        TextFiles(path=str(tmp_path / "notes.md"), glob="*.md").load()
    with pytest.raises(DataError, match=r"found no file or folder at .*glob="):
        TextFiles(path=str(tmp_path / "*.txt")).load()
    with pytest.raises(DataError, match=r"matching glob='\*\.rst'") as refused:  # the fix names glob=, not the folder
        TextFiles(path=str(tmp_path), glob="*.rst").load()
    assert refused.value.fix.startswith("change glob=")


TEXT = "Café crème, naïve façade, «déjà vu».\n\nÀ bientôt, señor Müller.\n"


@pytest.mark.parametrize(
    ("payload", "encoding"),
    [
        (codecs.BOM_UTF8 + TEXT.encode(), "utf-8"),
        (codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"), "utf-8"),  # the BOM decides
        (codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"), "utf-8"),
        (TEXT.encode("latin-1"), "latin-1"),
        (TEXT.replace("\n", "\r\n").encode("cp1252"), "cp1252"),  # Windows, with CRLF
        (TEXT.encode("utf-16-le"), "utf-16-le"),
    ],
)
def test_encodings_and_byte_order_marks_give_the_same_text(tmp_path, payload, encoding):
    (tmp_path / "doc.txt").write_bytes(payload)
    docs = TextFiles(path=str(tmp_path / "doc.txt"), encoding=encoding).load()
    assert docs == [p.strip() for p in TEXT.split("\n\n")]  # no BOM left at the start, CRLF read as LF


def test_a_latin1_copy_gives_exactly_the_numbers_of_its_utf8_copy(tmp_path):
    text = corpus(ROMAN).replace("Caesar", "César")  # accented letters the two encodings store differently
    (tmp_path / "utf8.txt").write_bytes(text.encode())
    (tmp_path / "latin1.txt").write_bytes(text.encode("latin-1"))
    protocol = get_registry().protocol("smoke")
    a = prepare(TextFiles(path=str(tmp_path / "utf8.txt")), protocol)
    b = prepare(TextFiles(path=str(tmp_path / "latin1.txt"), encoding="latin-1"), protocol)
    assert a.hashes == b.hashes and a.test_chars == b.test_chars


@pytest.mark.parametrize(
    ("payload", "cause", "fix"),
    [
        (TEXT.encode("latin-1"), r"as utf-8: byte 0xe9 at position 3 \(line 1\)", "encoding=latin-1"),
        (TEXT.encode("utf-16-le"), "NUL byte at position 1, so it is binary or UTF-16", "encoding=utf-16-le"),
        (bytes(range(256)), "NUL byte at position 0", "remove it"),
        (b"", "is empty", "give files holding text"),
        (b"  \n\n \t\n", "is empty", "give files holding text"),
    ],
)
def test_unreadable_files_name_the_file_the_cause_and_the_fix(tmp_path, payload, cause, fix):
    (tmp_path / "doc.txt").write_bytes(payload)
    with pytest.raises(DataError, match=cause) as err:
        TextFiles(path=str(tmp_path / "doc.txt")).load()
    assert "doc.txt" in str(err.value) and fix in str(err.value)


def test_unreadable_file_through_the_cli_is_a_clean_error_and_exit_2(tmp_path):
    (tmp_path / "doc.txt").write_bytes(TEXT.encode("latin-1"))
    out = subprocess.run(
        [sys.executable, "-c", "from collapse_bench.cli import main; main()", "run", "--protocol", "smoke", "--dataset",
         f"text-files:path={tmp_path / 'doc.txt'}", "--out", str(tmp_path / "runs"), "--cache", str(tmp_path / "c")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert "Traceback" not in out.stderr and "byte 0xe9 at position 3" in lines[0] and "doc.txt" in lines[0]
    assert "encoding=latin-1" in out.stderr and len(lines) <= 2  # the error, and the CLI's line with its fix


def test_unknown_encoding_is_refused_before_reading():
    with pytest.raises(ConfigError, match="no text encoding 'klingon'"):
        TextFiles(path="x", encoding="klingon")


def test_lines_holding_only_whitespace_separate_paragraphs(tmp_path):
    paragraphs = [f"paragraph {i}\nits second line" for i in range(103)]
    separators = ["\n\n", "\n  \n", "\n\t\n", "\n \n\n  \n"]
    text = "".join(p + separators[i % 4] for i, p in enumerate(paragraphs))
    (tmp_path / "a.txt").write_text(text)
    assert TextFiles(path=str(tmp_path / "a.txt")).load() == paragraphs


def test_json_lines_gz_and_parquet_in_one_folder(tmp_path):
    import pandas as pd

    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(b'{"text": "one"}\n{"text": "two"}\n'))
    (tmp_path / "b.txt.gz").write_bytes(gzip.compress(b"three\n\nfour\n"))
    pd.DataFrame({"text": ["five"]}).to_parquet(tmp_path / "c.parquet")
    (tmp_path / "d.json").write_text(json.dumps([{"text": "six"}]))
    assert TextFiles(path=str(tmp_path)).load() == ["one", "two", "three", "four", "five", "six"]


def test_one_long_line_is_cut_into_chunks(tmp_path):
    words = " ".join(f"word{i}" for i in range(40_000))  # one line, about 340 KB
    (tmp_path / "one.txt").write_text(words)
    with pytest.raises(DataError, match=r"single document .* sample_by=chunk"):
        prepare(TextFiles(path=str(tmp_path / "one.txt")), get_registry().protocol("smoke"))
    docs = TextFiles(path=str(tmp_path / "one.txt"), sample_by="chunk", chunk_chars=1000).load()
    assert all(len(d) <= 1000 for d in docs) and " ".join(docs) == words  # cut between words only
    cjk = "漢字仮名交じり文" * 500
    (tmp_path / "cjk.txt").write_text(cjk)
    pieces = TextFiles(path=str(tmp_path / "cjk.txt"), sample_by="chunk", chunk_chars=300).load()
    assert [len(p) for p in pieces] == [300] * 13 + [100] and "".join(pieces) == cjk
    real = prepare(TextFiles(path=str(tmp_path / "one.txt"), sample_by="chunk"), get_registry().protocol("smoke"))
    assert len(real.train) == 256


def test_data_preparation_reports_its_steps(tmp_path):
    (tmp_path / "a.txt").write_text(corpus(ROMAN))
    steps: list[str] = []
    prepare(TextFiles(path=str(tmp_path / "a.txt")), get_registry().protocol("smoke"), steps.append)
    n_train = len(ROMAN) - round(0.1 * len(ROMAN))
    assert steps[0] == "loading dataset 'text-files'"
    assert steps[1].startswith(f"fitting the tokenizer on {n_train:,} documents")
    assert steps[2] == "encoding the documents into rows"


def test_long_words_are_cut_before_bpe_training():
    tok = fit_tokenizer(["abcdefghij" * 5000, "short words here"], 300)
    pieces = tok.pre_tokenizer.pre_tokenize_str("x" * 1000 + " short")
    assert max(len(p) for p, _ in pieces) == MAX_WORD_BYTES
    assert [p for p, _ in pieces][-1] == "Ġshort"  # ordinary words are left whole
    assert tok.decode(tok.encode("x" * 1000 + " short").ids) == "x" * 1000 + " short"


def _mixed(rng: np.random.Generator, n: int) -> list[str]:
    """Paragraphs of CJK, emoji (some of two code points) and letters with combining accents."""
    cjk = [chr(c) for c in range(0x4E00, 0x4E00 + 400)]  # too many for a 512-token BPE to merge them all
    alphabet = [*cjk, *"한국어", "😀", "🎉", "👍🏽", "e\u0301", "a\u0308", "n\u0303", *" " * 40, *"。" * 10]
    return ["".join(rng.choice(alphabet, size=int(rng.integers(40, 200)))).strip() for _ in range(n)]


def test_character_counts_come_from_the_bytes_of_the_stream(tmp_path):
    paragraphs = _mixed(np.random.default_rng(0), 900)
    (tmp_path / "mixed.txt").write_text(corpus(paragraphs))
    real = prepare(TextFiles(path=str(tmp_path / "mixed.txt")), get_registry().protocol("smoke"))
    table = token_bytes(real.tokenizer)
    for doc in paragraphs[:50]:  # the byte table reproduces every document exactly
        assert b"".join(table[i] for i in real.tokenizer.encode(doc).ids) == doc.encode()
    # the real text of the test rows: the test documents' stream, up to the rows' last whole character
    test_bytes = b"".join(table[i] for i in real.test.ravel())
    text = test_bytes.decode("utf-8", errors="ignore")
    assert text.encode() == test_bytes[: len(text.encode())] and len(test_bytes) - len(text.encode()) < 4
    whole = text.split("\n\n")[:-1]  # the last one is cut by the end of the rows
    assert len(whole) > 10 and set(whole) <= set(paragraphs)
    assert real.test_chars == len(text) == count_chars(test_bytes)
    per_row = sum(len(t) for t in real.decode(real.test))  # what decoding rows one by one counted
    assert per_row > real.test_chars and "\ufffd" not in text
