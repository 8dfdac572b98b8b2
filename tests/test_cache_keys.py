"""The cache key covers everything that produces a result: a component's package code and what it reads."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import numpy as np
import pytest
from test_resume import cb

from collapse_bench.builtin.metrics.repetition import RepetitionMetric
from collapse_bench.builtin.models.hf import HfModel, hub_revision
from collapse_bench.errors import ConfigError, PluginError
from collapse_bench.keys import code_modules, dependencies_digest
from collapse_bench.testing import run_protocol


def test_code_of_a_component_is_its_module_and_the_package_modules_it_imports():
    # repetition.py imports counting, guards, components, contexts and errors; protocol only under
    # TYPE_CHECKING. contexts imports decoding (which imports settings and errors); components
    # imports contexts and protocol only under TYPE_CHECKING.
    assert set(code_modules(RepetitionMetric.__module__)) == {
        "collapse_bench.builtin.metrics.repetition",
        "collapse_bench.builtin.metrics.counting",
        "collapse_bench.builtin.metrics.guards",
        "collapse_bench.components",
        "collapse_bench.contexts",
        "collapse_bench.decoding",
        "collapse_bench.settings",
        "collapse_bench.errors",
    }
    # `from collapse_bench.builtin.models import torch_decoding` inside a method is followed to the
    # submodule, and from there to the torch plumbing it imports.
    hf = code_modules(HfModel.__module__)
    for torch_side in ("torch_support", "torch_training", "torch_decoding"):
        assert f"collapse_bench.builtin.models.{torch_side}" in hf
    assert "collapse_bench.builtin.models.ngram" not in hf


PACKAGE = {
    "__init__.py": """
        from collapse_bench import hookimpl
        from .metric import Share


        @hookimpl
        def register_metrics(register):
            register(Share)
    """,
    "metric.py": """
        from collapse_bench import HIGHER, Metric
        from .counting import share


        class Share(Metric):
            '''A value computed by a helper module.'''

            name = "helper-share"
            modalities = frozenset({"text"})
            outputs = {"helper-share": HIGHER}

            def compute(self, ctx):
                return {"helper-share": share(ctx.samples)}
    """,
    "counting.py": """
        def share(samples):
            return float((samples % 2 == 0).mean())
    """,
}


def test_editing_a_helper_module_of_a_plugin_recomputes_its_scores(tmp_path):
    site = tmp_path / "site"
    package = site / "helperplug"
    package.mkdir(parents=True)
    for name, text in PACKAGE.items():
        (package / name).write_text(textwrap.dedent(text))
    info = site / "helperplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: helperplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[collapse_bench]\nhelperplug = helperplug\n")
    env = {"PYTHONPATH": str(site)}
    args = ["run", "--protocol", "smoke", "--mixer", "replace", "--metric", "helper-share", "-q"]
    cache = tmp_path / "cache"

    def values(run_id: str) -> tuple[list[float], str]:
        res = cb(*args, "--run-id", run_id, cwd=tmp_path, cache=cache, env=env)
        assert res.returncode == 0, res.stderr
        lines = (tmp_path / "runs" / run_id / "records.jsonl").read_text().splitlines()
        return [json.loads(line)["scores"]["helper-share"] for line in lines], res.stderr

    even, _ = values("a")
    (package / "counting.py").write_text("def share(samples):\n    return float((samples % 2 == 1).mean())\n")
    odd, stderr = values("b")
    assert "computed: 0" in stderr  # the models did not change; only the metric's scores were recomputed
    assert all(0 < e < 1 for e in even)
    np.testing.assert_allclose(odd, [1 - e for e in even], rtol=1e-12)


def _opt(path: Path, seed: int, texts: list[str]) -> None:
    """A random OPT with its own BPE, saved as hub models are (see tests/test_transformers.py)."""
    import torch
    from test_transformers import _tokenizer
    from transformers import AutoModelForCausalLM, OPTConfig

    tok = _tokenizer(texts, {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"})
    config = OPTConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, ffn_dim=64, num_attention_heads=2,
        max_position_embeddings=512, word_embed_proj_dim=32, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    tok.save_pretrained(path)


def _perplexity_by_hand(path: Path, real) -> float:
    """Perplexity of the checkpoint on the test rows, with transformers alone: each row's text after BOS."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    total = 0.0
    with torch.no_grad():
        for text in real.tokenizer.decode_batch([r.tolist() for r in real.test]):
            ids = torch.tensor([[tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]])
            logits = model(ids).logits[0, :-1].double()
            total += float(torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum"))
    return math.exp(total / real.test.size)


def test_an_overwritten_local_checkpoint_is_not_served_from_the_cache(tmp_path):
    pytest.importorskip("transformers")
    from collapse_bench.contract import real_data

    real = real_data("text")  # the smoke protocol's data
    texts = real.decode(real.train)
    path = tmp_path / "ckpt"
    grid = {
        "models": [f"hf:path={path}"],
        "mixers": ["replace"],
        "metrics": ["perplexity"],
        "generations": 2,
        "samples": 16,
        "training": {"steps": 0, "precision": "fp32"},  # generation 0 is the checkpoint itself, in fp32
    }

    def gen0(out: str, cache: str) -> float:
        df = run_protocol(tmp_path / out, cache=tmp_path / cache, **grid)
        return float(df[(df.generation == 0) & (df.metric == "perplexity")].value.iloc[0])

    _opt(path, 0, texts)
    old = gen0("first", "cache")
    _opt(path, 1, texts)  # the same path, another model
    again = gen0("second", "cache")
    fresh = gen0("fresh", "fresh-cache")
    assert again != old
    assert again == fresh
    assert again == pytest.approx(_perplexity_by_hand(path, real), rel=1e-5)
    declared = [
        next(p["dependencies"] for p in json.loads((tmp_path / run / "manifest.json").read_text())["plugins"]
             if p["kind"] == "model")
        for run in ("first", "second")
    ]  # fmt: skip
    assert declared[0]["declared"] == declared[1]["declared"] == [str(path)]
    assert declared[0]["sha256"] != declared[1]["sha256"]


def test_every_file_of_a_local_checkpoint_is_in_the_key(tmp_path):
    for name in ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json"):
        (tmp_path / name).write_text("{}")
    model = HfModel(path=str(tmp_path))
    before = dependencies_digest(model, "hf")
    for name in ("generation_config.json", "tokenizer.json"):
        (tmp_path / name).write_text('{"changed": true}')
        after = dependencies_digest(model, "hf")
        assert after != before
        before = after


def test_a_hub_name_is_keyed_by_the_commit_of_its_cached_snapshot_offline(tmp_path, monkeypatch):
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE  # tests run offline (conftest): the local hub cache answers
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--org--tiny"
    first, second = "1" * 40, "2" * 40
    for commit in (first, second):
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    keys = []
    for commit in (first, second):
        (repo / "refs" / "main").write_text(commit)
        hub_revision.cache_clear()
        assert HfModel(path="org/tiny").dependencies() == [f"org/tiny@{commit}"]
        keys.append(dependencies_digest(HfModel(path="org/tiny"), "hf"))
    assert keys[0] != keys[1]
    hub_revision.cache_clear()
    with pytest.raises(ConfigError, match="cannot tell which revision of 'org/nothing'"):
        HfModel(path="org/nothing").dependencies()
    hub_revision.cache_clear()


def test_a_changed_corpus_file_changes_the_text_files_key(tmp_path):
    from collapse_bench.builtin.datasets import TextFiles

    (tmp_path / "a.txt").write_text("one\n\ntwo\n")
    dataset = TextFiles(path=str(tmp_path))
    before = dependencies_digest(dataset, "text-files")
    (tmp_path / "a.txt").write_text("one\n\nthree\n")
    assert dependencies_digest(dataset, "text-files") != before


def test_declared_dependencies_must_be_paths_or_identifiers():
    class Bad:
        def dependencies(self):
            return [42]

    with pytest.raises(PluginError, match="declared 42 in dependencies"):
        dependencies_digest(Bad(), "model 'bad'")


def test_a_component_from_a_plugins_folder_is_keyed_by_its_file(tmp_path):
    from collapse_bench.keys import code_hash
    from collapse_bench.plugins import _import_file

    source = tmp_path / "folder_mixer.py"
    hashes = []
    for body in ("return ctx.history[-1]", "return ctx.history[0]"):
        header = "from collapse_bench import Mixer\n\n\nclass Last(Mixer):\n    name = 'last'\n\n"
        source.write_text(f"{header}    def mix(self, ctx):\n        {body}\n")
        code_hash.cache_clear()
        hashes.append(code_hash(_import_file(source).Last))
    assert "unknown" not in hashes and hashes[0] != hashes[1]


def test_hashing_a_components_code_imports_no_other_package():
    """Resolving `from transformers import X` must not import transformers (a second of every rerun)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from collapse_bench.plugins import get_registry\n"
        "from collapse_bench.keys import code_hash\n"
        "registry = get_registry()\n"
        "classes = [e.obj for kind in ('dataset', 'model', 'metric') for e in registry.entries(kind)]\n"
        "before = set(sys.modules)\n"
        "assert 'unknown' not in [code_hash(c) for c in classes]\n"
        "print(sorted({m.split('.')[0] for m in set(sys.modules) - before} - {'collapse_bench'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
