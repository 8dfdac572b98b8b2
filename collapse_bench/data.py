"""Real data for a run: the fixed train/test/pool split and, for text, the run's tokenizer.

The split depends only on the dataset and the protocol's ``[data]`` table (never on the run's
seeds), and every part is hashed into the manifest, so two runs that claim the same protocol can
prove they trained and tested on the same data.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from collapse_bench.contexts import RealData
from collapse_bench.errors import DataError
from collapse_bench.hub import require_hub

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from collapse_bench.components import Dataset
    from collapse_bench.protocol import Protocol


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


#: Longest pre-tokenized word, in bytes. BPE training time grows near quadratically with the length
#: of the longest word, and text without spaces is one word; longer words are cut into pieces.
MAX_WORD_BYTES = 64


def fit_tokenizer(documents: list[str], vocab_size: int) -> Tokenizer:
    """Byte-level BPE fitted on ``documents``; every byte is in the vocabulary, so any text encodes.

    Words are split as GPT-2 splits them, then cut into pieces of at most :data:`MAX_WORD_BYTES`
    bytes, so that training time grows with the text's size, not with its longest word.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.ByteLevel(add_prefix_space=False),
            pre_tokenizers.Split(Regex(f".{{1,{MAX_WORD_BYTES}}}"), behavior="isolated"),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(documents, trainer)
    return tok


@functools.cache
def _byte_of() -> dict[str, int]:
    """The byte each character of the byte-level alphabet stands for (GPT-2's ``bytes_to_unicode``, inverted)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return {chr(c): b for c, b in zip([*printable, *range(256, 256 + len(others))], [*printable, *others], strict=True)}


def token_bytes(tokenizer: Tokenizer) -> list[bytes]:
    """The bytes of every token id of a byte-level tokenizer (the run's), by id; special tokens
    (a pretrained tokenizer's ``</s>``) stand for no text, so they have none."""
    byte_of = _byte_of()
    special = {i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special}
    return [
        b"" if i in special else bytes(byte_of[c] for c in tokenizer.id_to_token(i))
        for i in range(tokenizer.get_vocab_size())
    ]


def count_chars(data: bytes) -> int:
    """Characters of UTF-8 ``data`` that end in it: a character cut at the end is not counted
    (it belongs to whatever follows), so cutting a stream anywhere and adding the parts' counts
    gives the whole stream's count when each part starts where a character starts."""
    return len(data.decode("utf-8", errors="ignore"))


def _cut(ids: list[int], length: int) -> np.ndarray:
    """A token stream cut into rows of ``length`` tokens; the remainder is dropped."""
    stream = np.asarray(ids, dtype=np.int32)
    n = len(stream) // length
    return stream[: n * length].reshape(n, length)


def _blocks(tokenizer: Tokenizer, documents: list[str], length: int) -> np.ndarray:
    """Encode documents, each followed by a blank line, into one stream cut into rows of ``length`` tokens."""
    return _cut([i for enc in tokenizer.encode_batch([d + "\n\n" for d in documents]) for i in enc.ids], length)


def pretrained_tokenizer(path: str) -> Any:
    """A pretrained fast tokenizer (hub id or directory), as ``transformers`` loads it."""
    from transformers import AutoTokenizer

    if not Path(path).expanduser().is_dir():
        require_hub(f"[data] tokenizer {path!r}")
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"[data] tokenizer {path!r} cannot be loaded: {reason}",
            'give a directory written by save_pretrained, a reachable hub id, or tokenizer = "fit"',
        ) from None
    if not tok.is_fast:
        raise DataError(f"[data] tokenizer {path!r} is a slow tokenizer", "save it as a fast tokenizer")
    return tok


def _own_blocks(tokenizer: Any, documents: list[str], length: int) -> np.ndarray:
    """Each document encoded as ``tokenizer`` encodes it (special tokens included, e.g. OPT's
    ``</s>`` before each), concatenated in order and cut into rows of ``length`` tokens."""
    encoded = tokenizer(documents)["input_ids"] if documents else []
    return _cut([i for ids in encoded for i in ids], length)


def _too_small(short: dict[str, tuple[int, int]], protocol: Protocol) -> DataError:
    """The error for a dataset too small for the protocol: every shortfall, and the overrides that fit it.

    ``short`` maps a ``[data]`` field (``train_size``, ``test_size``) to (rows the dataset gives, rows needed).
    """
    what = {"train_size": "training ", "test_size": "test "}
    gives = " and ".join(f"{have} {what.get(field, '')}rows" for field, (have, _) in short.items())
    needs = " and ".join(str(need) for _, need in short.values())
    fits = " ".join(f"--set data.{field}={have}" for field, (have, _) in short.items() if field in what and have)
    return DataError(
        f"dataset {protocol.dataset.name!r} gives {gives}, but protocol {protocol.label} needs {needs}",
        f"use a larger dataset{f', or run a smaller variant: {fits}' if fits else ''}",
    )


def _duplicates(test_docs: list[str], train_docs: list[str]) -> int:
    """Test documents that occur verbatim in training."""
    seen = set(train_docs)
    return sum(d in seen for d in test_docs)


def _documents(raw: Any, rows: str) -> list[str]:
    """The documents of a text dataset as ``[data] rows`` says: ``raw`` as given, else stripped, empty ones dropped."""
    texts = [d for d in raw if isinstance(d, str)]
    return texts if rows == "raw" else [d.strip() for d in texts if d.strip()]


def prepare(dataset: Dataset, protocol: Protocol, progress: Callable[[str], None] | None = None) -> RealData:
    """Load ``dataset`` and split it as ``protocol`` says; ``progress`` hears each step as it starts."""
    say = progress or (lambda _: None)
    say(f"loading dataset {dataset.name!r}")
    raw = dataset.load()
    source = dataset.describe()
    spec = protocol.data
    rng = np.random.default_rng(spec.split_seed)
    if dataset.modality == "text":
        own = {part: _documents(docs, spec.rows) for part, docs in dataset.held_out().items()}
        docs = _documents(raw, spec.rows)
        if "test" in own:
            test_docs, train_docs = own["test"], docs
        else:
            if len(docs) < 2:
                raise DataError(
                    f"dataset {protocol.dataset.name!r} gave {len(docs)} non-empty documents",
                    "a text dataset needs at least two documents (one for test, one for train)",
                )
            order = rng.permutation(len(docs))
            n_test = max(1, round(spec.test_fraction * len(docs)))
            test_idx, train_idx = order[:n_test], order[n_test:]
            if spec.order == "dataset":
                test_idx, train_idx = np.sort(test_idx), np.sort(train_idx)
            test_docs = [docs[i] for i in test_idx]
            train_docs = [docs[i] for i in train_idx]
        if spec.tokenizer == "fit":
            size = sum(len(d) for d in train_docs)
            say(f"fitting the tokenizer on {len(train_docs):,} documents ({size:,} characters)")
            tokenizer = fit_tokenizer(train_docs, spec.vocab_size)

            def blocks(documents: list[str]) -> np.ndarray:
                return _blocks(tokenizer, documents, spec.block_tokens)
        else:
            say(f"loading the tokenizer {spec.tokenizer!r}")
            pretrained = pretrained_tokenizer(spec.tokenizer)
            tokenizer = pretrained.backend_tokenizer

            def blocks(documents: list[str]) -> np.ndarray:
                return _own_blocks(pretrained, documents, spec.block_tokens)

        say("encoding the documents into rows")
        train_all = blocks(train_docs)
        test_all = blocks(test_docs)
        if spec.order == "shuffled":
            train_all = train_all[rng.permutation(len(train_all))]
        train_size = spec.train_size or len(train_all)
        test_size = spec.test_size or len(test_all)
        short = {
            field: (len(rows), size)
            for field, rows, size in (("train_size", train_all, train_size), ("test_size", test_all, test_size))
            if len(rows) < max(size, 1)
        }
        if short:
            raise _too_small(short, protocol)
        test = test_all[:test_size]
        real = RealData(
            modality="text",
            train=train_all[:train_size],
            test=test,
            pool=train_all[train_size:],
            tokenizer=tokenizer,
            validation=blocks(own["validation"]) if "validation" in own else None,
        )
        table = token_bytes(tokenizer)
        real.test_chars = count_chars(b"".join(table[i] for i in test.ravel()))
        duplicates = _duplicates([d for d in test_docs if d.strip()], train_docs)
        if duplicates:
            real.notes.append(
                f"warning: {duplicates} of {len(test_docs)} test documents also occur verbatim in training, so "
                "perplexity on them measures memorisation; remove duplicate documents from the corpus"
            )
            real.source["duplicate_test_documents"] = duplicates
        real.hashes["tokenizer"] = _digest(tokenizer.to_str().encode())
        if real.validation is not None:
            real.hashes["validation"] = _digest(np.ascontiguousarray(real.validation).tobytes())
    else:
        arr = np.asarray(raw, dtype=np.float64)
        if arr.ndim != 2:
            raise DataError(
                f"dataset {protocol.dataset.name!r} gave an array of shape {arr.shape}",
                "a vector dataset returns a 2-D array (rows, dim)",
            )
        if not spec.train_size or not spec.test_size:
            raise DataError(
                f"protocol {protocol.label} takes every block (train_size or test_size = 0), but "
                f"dataset {protocol.dataset.name!r} gives vector rows, which have no blocks",
                "give vector data a train_size and a test_size of 1 or more",
            )
        arr = arr[rng.permutation(len(arr))]
        need = spec.train_size + spec.test_size
        if len(arr) < need:
            raise _too_small({"rows": (len(arr), need)}, protocol)
        real = RealData(
            modality="vector",
            test=arr[: spec.test_size],
            train=arr[spec.test_size : need],
            pool=arr[need:],
        )
    if source.get("summary"):
        real.notes.insert(0, source["summary"])
    real.source = {**source, **real.source}
    for part in ("train", "test", "pool"):
        real.hashes[part] = _digest(np.ascontiguousarray(getattr(real, part)).tobytes())
    real.truth = {k: np.asarray(v) for k, v in dataset.truth().items()}
    return real
