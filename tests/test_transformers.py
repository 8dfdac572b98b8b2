"""The transformer models: gpt trained from scratch and hf fine-tuned from a local checkpoint."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from collapse_bench.builtin.datasets import Shakespeare
from collapse_bench.builtin.models.gpt import GptModel, GptTiny
from collapse_bench.builtin.models.hf import HfModel, row_text
from collapse_bench.contexts import FitContext, SampleContext
from collapse_bench.data import prepare, token_bytes
from collapse_bench.decoding import Decoding
from collapse_bench.errors import ConfigError
from collapse_bench.plugins import get_registry
from collapse_bench.testing import protocol_with

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

#: A network small enough to train in a second: the test is about behaviour, not quality.
MICRO = {"layers": 1, "width": 32, "heads": 2}
FAST = {"steps": 30, "batch_size": 32, "lr": 3e-3, "eval_batch_size": 256}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks gain nothing from threads, and spinning threads crawl on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def real():
    return prepare(Shakespeare(genres="roman"), get_registry().protocol("smoke"))


def fit(model, real, seed=0, training=FAST, data=None, **ctx):
    rng = np.random.default_rng(seed)
    context = FitContext(seed, 0, rng, dict(training), real.vocab_size, real.tokenizer, **ctx)
    model.fit(real.train if data is None else data, context)
    return model


def draw(model, real, n=16, seed=0, **decoding):
    ctx = SampleContext(
        np.random.default_rng(seed), real.train.shape[1], Decoding(**decoding), real.train, real.tokenizer
    )
    return model.sample(n, ctx)


def perplexity(model, real) -> float:
    return float(np.exp(model.nll(real.test).mean()))


def test_importing_the_package_does_not_import_torch():
    code = (
        "import sys; from collapse_bench.plugins import get_registry; get_registry(); "
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sizes_are_registered_with_their_own_defaults(registry):
    from collapse_bench.specs import Spec, resolve_params

    params = resolve_params(registry.get("model", "gpt-tiny").obj, Spec("gpt-tiny", {"layers": "3"}), "model")
    assert params["layers"] == 3 and params["width"] == 128
    assert registry.get("model", "gpt-small").obj().width == 256
    assert GptTiny(width=64).width == 64


def test_gpt_tiny_trained_on_smoke_beats_itself_untrained(real):
    untrained = fit(GptTiny(), real, training={"steps": 0})
    trained = fit(GptTiny(), real, training={"epochs": 4, "lr": 2e-3})
    before, after = perplexity(untrained, real), perplexity(trained, real)
    assert before > 0.7 * real.vocab_size  # an untrained network is close to uniform
    assert after < 0.5 * before
    assert trained.nll(real.test).shape == real.test.shape


def test_gpt_samples_rows_of_run_tokens_without_bos(real):
    model = fit(GptModel(**MICRO), real)
    for decoding in ({"temperature": 0.8, "top_k": 50, "top_p": 0.9}, {"strategy": "greedy"}):
        rows = draw(model, real, **decoding)
        assert rows.shape == (16, real.train.shape[1]) and rows.dtype == np.int32
        assert rows.min() >= 0 and rows.max() < real.vocab_size
    beam = draw(model, real, n=4, strategy="beam", num_beams=3, repetition_penalty=2.0)
    assert beam.shape == (4, real.train.shape[1]) and beam.max() < real.vocab_size


def test_greedy_is_sampling_with_top_k_one(real):
    model = fit(GptModel(**MICRO), real)
    np.testing.assert_array_equal(draw(model, real, strategy="greedy"), draw(model, real, top_k=1, seed=5))


def test_repetition_penalty_reduces_repeats(real):
    model = fit(GptModel(**MICRO), real)

    def repeats(rows):
        return np.mean([1 - len(set(r)) / len(r) for r in rows])

    plain = draw(model, real, strategy="greedy")
    penalized = draw(model, real, strategy="greedy", repetition_penalty=5.0)
    assert repeats(penalized) < repeats(plain)


def _decodes_as_forward(step, model, ids: torch.Tensor, first: torch.Tensor | None = None) -> None:
    """Decoding 8 tokens, then one and one more (``first``: the first step's logits, if taken
    already), gives the last-position logits of the model's own forward pass over them."""
    with torch.inference_mode():
        steps = [step(ids[:, :8]) if first is None else first, step(ids[:, 8:9]), step(ids[:, 9:10])]
        full = model(input_ids=ids).logits[:, 7:10]
    torch.testing.assert_close(torch.stack(steps, dim=1), full, rtol=1e-4, atol=1e-4)


def test_lean_gpt2_decoder_computes_what_the_model_computes(real):
    from collapse_bench.builtin.models import torch_decoding

    model = fit(GptModel(**MICRO), real).module
    ids = torch.as_tensor(real.test[:4, :10].astype(np.int64))
    step = torch_decoding.decoder(model, None, 12)
    assert type(step).__name__ == "_Gpt2Decoder"
    _decodes_as_forward(step, model, ids)


def test_lean_decoder_falls_back_to_the_model_when_transformers_changes_underneath(real):
    from collapse_bench.builtin.models import torch_decoding

    model = fit(GptModel(**MICRO), real).module

    def changed_body(module, args, out):  # a transformers release whose forward computes the body differently
        out.last_hidden_state.mul_(2)

    model.transformer.register_forward_hook(changed_body)  # the lean path reads the modules, not this forward
    ids = torch.as_tensor(real.test[:4, :10].astype(np.int64))
    step = torch_decoding.decoder(model, None, 12)
    with torch.inference_mode(), pytest.warns(RuntimeWarning, match="lean GPT-2 decoder computes other logits"):
        first = step(ids[:, :8])
    _decodes_as_forward(step, model, ids, first)


@pytest.mark.parametrize(
    "variant",
    [{"scale_attn_weights": False}, {"scale_attn_by_inverse_layer_idx": True}, {"reorder_and_upcast_attn": True}],
)
def test_gpt2_attention_variants_decode_through_the_model_with_its_logits(variant):
    # The lean decoder computes plain GPT-2 attention only; these configs change it, so they must
    # not reach it (at small weights unscaled attention differs by less than the first-step
    # check's tolerance, so that check would not catch it).
    from collapse_bench.builtin.models import torch_decoding

    torch.manual_seed(0)
    shape = {"n_layer": 2, "n_embd": 32, "n_head": 2, "vocab_size": 50, "n_positions": 16, "bos_token_id": 0}
    # Weights large enough that the variants' attention differs visibly from plain GPT-2's.
    config = transformers.GPT2Config(**shape, eos_token_id=0, initializer_range=0.5, **variant)
    model = transformers.GPT2LMHeadModel(config).eval()
    ids = torch.randint(0, 50, (3, 10), generator=torch.Generator().manual_seed(0))
    step = torch_decoding.decoder(model, None, 12)
    assert type(step).__name__ == "_HfDecoder"
    _decodes_as_forward(step, model, ids)


def test_inverse_cdf_draws_follow_the_probabilities_and_skip_zeros():
    from collapse_bench.builtin.models.torch_decoding import _draw

    probs = torch.tensor([[0.0, 0.25, 0.0, 0.75, 0.0]]).repeat(20000, 1)
    counts = torch.bincount(_draw(probs, torch.Generator().manual_seed(0)), minlength=5).numpy()
    assert counts[[0, 2, 4]].sum() == 0
    assert abs(counts[3] / counts.sum() - 0.75) < 0.02


def test_same_seed_same_numbers(real):
    a, b = fit(GptModel(**MICRO), real, seed=3), fit(GptModel(**MICRO), real, seed=3)
    np.testing.assert_array_equal(a.nll(real.test), b.nll(real.test))
    np.testing.assert_array_equal(draw(a, real, seed=1), draw(b, real, seed=1))
    c = fit(GptModel(**MICRO), real, seed=4)
    assert not np.array_equal(a.nll(real.test), c.nll(real.test))


def test_llama_architecture_and_init_from_previous(real):
    first = fit(GptModel(arch="llama", **MICRO), real)
    second = fit(GptModel(arch="llama", init="previous", **MICRO), real, training={"steps": 0}, previous=first)
    np.testing.assert_allclose(second.nll(real.test[:8]), first.nll(real.test[:8]), rtol=1e-5)
    assert second.module is not first.module


def test_save_and_load_restore_the_model(real, tmp_path):
    model = fit(GptModel(**MICRO), real)
    model.save(tmp_path)
    restored = GptModel(**MICRO)
    restored.load(tmp_path)
    np.testing.assert_allclose(restored.nll(real.test[:8]), model.nll(real.test[:8]), rtol=1e-6)
    assert restored.training == model.training


@pytest.mark.parametrize(
    ("table", "decoding", "match"),
    [
        ({"epoch": 3}, {}, "no setting 'epoch'"),
        ({"lr": "fast"}, {}, "not a float"),
        ({"schedule": "step"}, {}, "choose one of"),
        ({}, {"strategy": "beam", "temperature": 0.7}, "applies to strategy 'sample'"),
        ({}, {"prompt": "train"}, "cannot continue training rows"),
        ({}, {"max_new_tokens": 8}, "exactly 32 tokens"),
        ({}, {"top_p": 1.5}, "top_p"),
    ],
)
def test_check_refuses_settings_gpt_cannot_honour(table, decoding, match):
    with pytest.raises(ConfigError, match=match):
        GptTiny().check(protocol_with("smoke", training=table, decoding=decoding))


# --- hf: a local checkpoint ----------------------------------------------------------------


def _tokenizer(texts, special):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=list(special.values()), initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **special)


@pytest.fixture(scope="module", params=["opt", "gpt2"])
def checkpoint(request, real, tmp_path_factory):
    """A random OPT (BOS and EOS) or GPT-2 (EOS only) with its own BPE, saved as hub models are."""
    from transformers import AutoModelForCausalLM, GPT2Config, OPTConfig

    texts = real.decode(real.train)
    if request.param == "opt":
        tok = _tokenizer(texts, {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"})
        config = OPTConfig(
            vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, ffn_dim=64, num_attention_heads=2,
            max_position_embeddings=512, word_embed_proj_dim=32, bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        )  # fmt: skip
    else:
        tok = _tokenizer(texts, {"eos_token": "<|endoftext|>"})
        config = GPT2Config(
            vocab_size=len(tok), n_positions=512, n_embd=32, n_layer=1, n_head=2,
            bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id,
        )  # fmt: skip
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp(request.param)
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_hf_fine_tunes_samples_and_scores(checkpoint, real, tmp_path):
    untrained = fit(HfModel(path=str(checkpoint)), real, training={"steps": 0})
    model = fit(HfModel(path=str(checkpoint)), real, training={"steps": 40, "lr": 3e-3, "batch_size": 16})
    nll = model.nll(real.test)
    assert nll.shape == real.test.shape and np.isfinite(nll).all() and (nll >= 0).all()
    assert perplexity(model, real) < perplexity(untrained, real)
    bits_per_char = nll.sum() / math.log(2) / real.test_chars
    assert 0 < bits_per_char < 16

    for decoding in ({"temperature": 0.9, "prompt": "train"}, {"strategy": "beam", "num_beams": 2}):
        rows = draw(model, real, n=6, **decoding)
        assert rows.shape == (6, real.train.shape[1]) and rows.dtype == np.int32
        assert rows.min() >= 0 and rows.max() < real.vocab_size

    model.save(tmp_path)
    restored = HfModel(path=str(checkpoint))
    restored.load(tmp_path)
    np.testing.assert_allclose(restored.nll(real.test[:8]), nll[:8], rtol=1e-5)


def by_hand(model: HfModel, text: str) -> float:
    """The total NLL of ``text`` after BOS, straight from transformers."""
    ids = torch.tensor([[model.bos, *model.tokenizer(text, add_special_tokens=False)["input_ids"]]])
    with torch.no_grad():
        logits = model.module(input_ids=ids).logits.float()
    return float(torch.nn.functional.cross_entropy(logits[0, :-1], ids[0, 1:], reduction="sum"))


def row_bytes(real, row) -> list[bytes]:
    table = token_bytes(real.tokenizer)
    return [table[i] for i in row]


def test_hf_nll_is_per_token_and_sums_to_the_rows_total(checkpoint, real):
    model = fit(HfModel(path=str(checkpoint)), real, training={"steps": 0})
    nll = model.nll(real.test[:8])
    for row, values in zip(real.test[:8], nll, strict=True):
        text = b"".join(row_bytes(real, row)).decode()  # these rows are ASCII: every byte is text
        assert math.isclose(values.sum(), by_hand(model, text), rel_tol=1e-4)
        own = model.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        ends = np.cumsum([len(b) for b in row_bytes(real, row)])  # ASCII: characters are bytes
        holders = {int(np.searchsorted(ends, end - 1, side="right")) for _, end in own}
        # each own token's NLL sits on the run token holding its last byte; the others carry 0
        assert set(np.flatnonzero(values)) <= holders and len(set(values.round(6))) > 3


def test_hf_scores_the_exact_bytes_of_rows_that_cut_characters(checkpoint, tmp_path):
    from collapse_bench.builtin.datasets import TextFiles

    rng = np.random.default_rng(1)
    alphabet = [chr(c) for c in range(0x4E00, 0x4E00 + 300)] + ["😀", "e\u0301", " ", " ", "。"]
    paragraphs = ["".join(rng.choice(alphabet, size=120)) for _ in range(900)]
    (tmp_path / "cjk.txt").write_text("\n\n".join(paragraphs))
    cjk = prepare(TextFiles(path=str(tmp_path / "cjk.txt")), get_registry().protocol("smoke"))
    model = fit(HfModel(path=str(checkpoint)), cjk, training={"steps": 0})
    rows = cjk.test[:16]
    nll = model.nll(rows)
    cut = 0
    for row, values in zip(rows, nll, strict=True):
        data = b"".join(row_bytes(cjk, row))
        text, _ = row_text(row_bytes(cjk, row))
        assert "\ufffd" not in text and text.encode() in data  # the row's own characters, exactly
        cut += len(data) > len(text.encode())
        assert len(data) - len(text.encode()) <= 6  # only characters cut at the two edges are left out
        assert math.isclose(values.sum(), by_hand(model, text), rel_tol=1e-4)
    assert cut >= 4  # rows that begin or end inside a character were exercised
    per_row_text = cjk.decode(rows)  # what the model used to score: U+FFFD for every cut character
    assert sum("\ufffd" in t for t in per_row_text) == cut


def test_hf_decodes_exactly_without_cleaning_up_spaces(real, tmp_path):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, OPTConfig, PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram())  # SentencePiece-style, whose saved configs ask for the cleanup
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=300, special_tokens=["<s>", "</s>"], unk_token="<s>")
    tok.train_from_iterator(real.decode(real.train), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", clean_up_tokenization_spaces=True
    )
    config = OPTConfig(
        vocab_size=len(fast), hidden_size=16, num_hidden_layers=1, ffn_dim=32, num_attention_heads=2,
        word_embed_proj_dim=16, bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, pad_token_id=1,
    )  # fmt: skip
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
    fast.save_pretrained(tmp_path)
    model = HfModel(path=str(tmp_path))
    model._own_tokenizer()
    text = "Friends , Romans , countrymen , lend me your ears ; I come to bury Caesar ."
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert model.tokenizer.decode(ids) != text  # the saved cleanup deletes the space before each comma
    assert model.decode([ids]) == [text]


def test_hf_fills_rows_when_the_model_stops_early(checkpoint, real):
    model = fit(HfModel(path=str(checkpoint)), real, training={"steps": 0})
    rows = draw(model, real, n=4, max_new_tokens=4, prompt="train")  # 4 own tokens cannot fill a row at once
    assert rows.shape == (4, real.train.shape[1])


def test_hf_same_seed_same_numbers(checkpoint, real):
    a, b = (fit(HfModel(path=str(checkpoint)), real, seed=2, training={"steps": 5}) for _ in range(2))
    np.testing.assert_array_equal(a.nll(real.test[:16]), b.nll(real.test[:16]))
    np.testing.assert_array_equal(draw(a, real, n=4, seed=1), draw(b, real, n=4, seed=1))


def test_hf_path_that_cannot_be_reached_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="hf cannot load the config of"):
        HfModel(path=str(tmp_path / "missing")).check(get_registry().protocol("smoke"))


def test_gpt_tiny_runs_the_grid_and_reloads_from_the_cache(run, tmp_path):
    mixers = ["replace", "keep-real", "accumulate", "accumulate-subsample", "fresh-real"]
    first = run("smoke", models=["gpt-tiny:layers=1,width=32"], mixers=mixers, generations=2, cache=tmp_path / "c")
    again = run("smoke", models=["gpt-tiny:layers=1,width=32"], mixers=mixers, generations=2, cache=tmp_path / "c")
    assert set(first["mixer"]) == set(mixers)
    ppl = first[first["metric"] == "perplexity"]["value"]
    assert np.isfinite(ppl).all() and len(ppl) == 2 * len(mixers)
    cols = ["mixer", "generation", "metric", "value"]
    key = cols[:3]
    pd_first = first[cols].sort_values(key).reset_index(drop=True)
    pd_again = again[cols].sort_values(key).reset_index(drop=True)
    np.testing.assert_allclose(pd_first["value"], pd_again["value"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_path_and_reloading_on_the_cpu(real, tmp_path):
    model = fit(GptModel(**MICRO), real)
    assert next(model.module.parameters()).device.type == "cuda"
    assert draw(model, real).shape == (16, real.train.shape[1])
    model.save(tmp_path)
    on_cpu = GptModel(**MICRO, device="cpu")
    on_cpu.load(tmp_path)
    np.testing.assert_allclose(on_cpu.nll(real.test[:8]), model.nll(real.test[:8]), rtol=1e-2)
    assert next(on_cpu.module.parameters()).device.type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_device_auto_is_the_cpu_without_a_gpu_and_cuda_is_refused_clearly(real):
    auto, cpu = fit(GptModel(**MICRO), real), fit(GptModel(**MICRO, device="cpu"), real)
    np.testing.assert_array_equal(auto.nll(real.test[:8]), cpu.nll(real.test[:8]))
    assert next(cpu.module.parameters()).device.type == "cpu"
    with pytest.raises(ConfigError, match="device=cuda was asked for, but torch sees no CUDA GPU"):
        fit(GptModel(**MICRO, device="cuda"), real)


def test_a_model_on_cuda_asks_the_executor_for_a_gpu():
    assert GptModel(**MICRO, device="cuda").resources() == {"cpus": 1, "gpus": 1}
    assert GptModel(**MICRO).resources() == {"cpus": 1, "gpus": 0}


def test_a_diverging_loss_stops_training_instead_of_training_on_garbage(real):
    with pytest.raises(FloatingPointError, match="training loss became"):
        fit(GptModel(**MICRO), real, training={**FAST, "lr": 1e30, "grad_clip": 0.0})


def test_an_epoch_is_train_size_rows_so_every_mixer_gets_the_same_budget(real):
    """Under accumulate generation 2 trains on D_0 + S_0 + S_1 (3 x 256 rows), under replace on 256."""
    n = len(real.train)  # 256 rows of 32 tokens (+ BOS) in smoke
    grown = np.concatenate([real.train] * 3)
    budget = {"epochs": 1, "batch_size": 64, "lr": 3e-3}
    replace = fit(GptModel(**MICRO), real, training=budget, data=real.train, train_size=n)
    accumulate = fit(GptModel(**MICRO), real, training=budget, data=grown, train_size=n)
    steps = math.ceil(256 / 64)
    assert replace.compute == accumulate.compute == {"optimizer_steps": steps, "tokens": steps * 64 * 33}
    per_data = fit(GptModel(**MICRO), real, training=budget | {"epochs_over": "data"}, data=grown, train_size=n)
    assert per_data.compute["optimizer_steps"] == math.ceil(3 * 256 / 64)


def test_training_sets_the_loss_type_so_transformers_does_not_warn(tmp_path):
    # transformers warns once per process, so a fresh one: a gpt whose class name names no loss, trained two steps.
    script = tmp_path / "fit.py"
    script.write_text(
        "import numpy as np\n"
        "from collapse_bench.builtin.datasets import Shakespeare\n"
        "from collapse_bench.builtin.models.gpt import GptModel\n"
        "from collapse_bench.contexts import FitContext\n"
        "from collapse_bench.data import prepare\n"
        "from collapse_bench.plugins import get_registry\n"
        "real = prepare(Shakespeare(genres='roman'), get_registry().protocol('smoke'))\n"
        "m = GptModel(layers=1, width=32, heads=2)\n"
        "ctx = FitContext(0, 0, np.random.default_rng(0), {'steps': 2}, real.vocab_size, real.tokenizer)\n"
        "m.fit(real.train[:64], ctx)\n"
        "print(type(m.module).__name__, m.compute['optimizer_steps'])\n"
    )
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert res.stdout.split() == ["GPT2LMHeadModel", "2"], res.stderr
    assert "loss_type" not in res.stderr


def test_torch_uses_one_thread_unless_the_user_chose():
    import os

    code = "from collapse_bench.builtin.models import torch_support; print(torch_support.torch.get_num_threads())"
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    for env, expected in ((clean, "1"), (clean | {"OMP_NUM_THREADS": "2"}, "2")):
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
        assert res.stdout.strip() == expected, res.stderr
