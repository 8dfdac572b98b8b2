"""`evaluate:module=...`: any evaluate module as a metric, offline with a local module written here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from collapse_bench.builtin.metrics.evaluate_module import EvaluateMetric
from collapse_bench.contexts import MetricContext
from collapse_bench.contract import check_metric
from collapse_bench.errors import ConfigError

MODULE = """
import datasets
import evaluate


class {name}(evaluate.Measurement):
    def _info(self):
        return evaluate.MeasurementInfo(
            description="test module", citation="", inputs_description="",
            features=datasets.Features({features}),
        )

    def _compute(self, predictions, references=None):
{body}
"""
TEXT = '{"predictions": datasets.Value("string")}'
PAIRS = '{"predictions": datasets.Value("string"), "references": datasets.Value("string")}'


def write(folder: Path, stem: str, body: str, features: str = TEXT) -> Path:
    path = folder / f"{stem}.py"
    source = MODULE.format(name=stem.title().replace("_", ""), features=features, body=textwrap.indent(body, " " * 8))
    path.write_text(source)
    return path


@pytest.fixture
def modules(tmp_path) -> Path:
    write(tmp_path, "chars", 'return {"mean_chars": sum(map(len, predictions)) / len(predictions), "note": "ok",'
                             ' "lengths": [len(p) for p in predictions]}')  # fmt: skip
    overlap = "same = [len(set(p.split()) & set(r.split())) for p, r in zip(predictions, references)]\n"
    write(tmp_path, "overlap", overlap + 'return {"shared_words": sum(same) / len(same)}', PAIRS)
    write(tmp_path, "words_only", 'return {"first": predictions[0]}')
    write(tmp_path, "ints", 'return {"n": 1}', '{"predictions": datasets.Value("int64")}')
    (tmp_path / "broken.py").write_text("import a_module_that_does_not_exist\n")
    return tmp_path


def score(metric: EvaluateMetric, real, samples: np.ndarray) -> dict[str, float]:
    return metric.compute(MetricContext(model=None, base=None, real=real, samples=samples, generation=1))


def test_a_local_module_scores_the_decoded_rows(modules, tiny_corpus):
    metric = EvaluateMetric(module=str(modules / "chars.py"), direction="lower", rows=16)
    # numeric outputs only, lists of numbers as their mean; the direction is the declared one
    assert metric.outputs == {"chars.mean_chars": "lower", "chars.lengths": "lower"}
    assert metric.directions() == {"evaluate.chars.mean_chars": "lower", "evaluate.chars.lengths": "lower"}
    rows = tiny_corpus.train
    texts = tiny_corpus.decode(rows[[i * len(rows) // 16 for i in range(16)]])
    mean = sum(len(t) for t in texts) / 16
    assert score(metric, tiny_corpus, rows) == {"chars.mean_chars": mean, "chars.lengths": mean}
    assert set(check_metric(EvaluateMetric, module=str(modules / "chars.py"))) == set(metric.outputs)
    only = EvaluateMetric(module=str(modules / "chars.py"), keys="mean_chars", rows=16)
    assert score(only, tiny_corpus, rows) == {"chars.mean_chars": mean}


def test_references_are_real_test_rows_one_per_prediction(modules, tiny_corpus):
    metric = EvaluateMetric(module=str(modules / "overlap.py"))
    rows = tiny_corpus.train[:300]
    k = min(256, len(rows))
    predictions = tiny_corpus.decode(rows[[i * len(rows) // k for i in range(k)]])
    test = tiny_corpus.test
    references = tiny_corpus.decode(test[[j % len(test) for j in range(k)]])
    shared = [len(set(p.split()) & set(r.split())) for p, r in zip(predictions, references, strict=True)]
    assert score(metric, tiny_corpus, rows) == {"overlap.shared_words": sum(shared) / k}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"module": "broken.py"}, "cannot be loaded: To be able to use broken, you need to install"),
        ({"module": "missing_module.py"}, "local module"),
        ({"module": "words_only.py"}, "returns no number (first: str)"),
        ({"module": "chars.py", "keys": "note"}, "returns str for 'note', not a number"),
        ({"module": "chars.py", "keys": "nope"}, "has no output 'nope'"),
        ({"module": "ints.py"}, "takes predictions of type int64, not text"),
    ],
)
def test_modules_that_cannot_serve_are_refused_with_one_line(modules, spec, message):
    params = {**spec, "module": str(modules / spec["module"])}
    with pytest.raises(ConfigError) as err:
        EvaluateMetric(**params)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_hub_name_offline_says_what_to_do():
    with pytest.raises(ConfigError) as err:
        EvaluateMetric(module="a_hub_module_that_cannot_be_fetched")
    assert "give the path of a local module" in str(err.value) and "HF_EVALUATE_OFFLINE" in str(err.value)


def cb(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_EVALUATE_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-c", "from collapse_bench.cli import main; main()", *args],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=600,
    )  # fmt: skip


def test_a_run_with_a_local_module_offline_and_its_failures(modules):
    spec = "evaluate:module=./chars.py,keys=mean_chars,direction=lower,rows=32"
    res = cb("run", "-p", "smoke", "--mixer", "replace", "--metric", spec, "-q", cwd=modules)
    assert res.returncode == 0, res.stderr
    (run,) = (modules / "runs").iterdir()  # before the second run below
    records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    assert [sorted(r["scores"]) for r in records] == [["evaluate.chars.mean_chars"]] * 3
    assert all(20 < r["scores"]["evaluate.chars.mean_chars"] < 400 for r in records)
    assert "evaluate.chars.mean_chars (lower is better)" in cb("show", str(run), cwd=modules).stdout
    # an edited module is scored again, not read back from the cache
    (modules / "chars.py").write_text((modules / "chars.py").read_text().replace("/ len(predictions)", "* 0.0"))
    res = cb("run", "-p", "smoke", "--mixer", "replace", "--metric", spec, "--run-id", "again", "-q", cwd=modules)
    assert res.returncode == 0, res.stderr
    again = [json.loads(line) for line in (modules / "runs" / "again" / "records.jsonl").read_text().splitlines()]
    assert [r["scores"]["evaluate.chars.mean_chars"] for r in again] == [0.0, 0.0, 0.0]
    bad = cb("run", "-p", "smoke", "--metric", "evaluate:module=./nowhere.py", "-q", cwd=modules)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("collapse-bench: error: evaluate module './nowhere.py' cannot be loaded")
