"""The plugin's own offline task: pick the next word of a held-out line of the run's real test text."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

#: A word that can be an answer: letters, possibly with an inner apostrophe or hyphen.
WORD = re.compile(r"[A-Za-z]+(?:['-][A-Za-z]+)*")


def questions(text: str, count: int, choices: int, seed: int = 0) -> list[dict[str, Any]]:
    """Multiple-choice next-word questions built from ``text``.

    A candidate is a word of a non-empty line of ``text`` that is a :data:`WORD` and not the
    line's first: its context is the previous line and this line up to the word. Up to ``count``
    candidates are taken evenly spaced over the text. The ``choices - 1`` distractors are other
    words drawn (seeded, distinct, never the answer) from every :data:`WORD` of the text, each as
    often as it occurs, so that answer and distractors come from one distribution: a model that
    knows only how frequent words are scores about chance, ``1 / choices``, and one that reads
    the context scores more. The answer's place among the choices is drawn too.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    candidates = []
    for i, line in enumerate(lines):
        words = line.split()
        for j in range(1, len(words)):
            if WORD.fullmatch(words[j]):
                head = " ".join(words[:j])
                candidates.append((f"{lines[i - 1]}\n{head}" if i else head, words[j]))
    pool = [w for line in lines for w in line.split() if WORD.fullmatch(w)]
    if len(set(pool)) < choices or not candidates:
        return []
    k = min(count, len(candidates))
    rng = np.random.default_rng(seed)
    docs = []
    for context, answer in (candidates[i * len(candidates) // k] for i in range(k)):
        distractors: list[str] = []
        while len(distractors) < choices - 1:
            word = pool[int(rng.integers(len(pool)))]
            if word != answer and word not in distractors:
                distractors.append(word)
        label = int(rng.integers(choices))
        options = [*distractors[:label], answer, *distractors[label:]]
        docs.append({"context": context, "choices": options, "label": label})
    return docs


def task_config(name: str, docs: list[dict[str, Any]]) -> dict[str, Any]:
    """An lm-eval multiple-choice task over ``docs``, held in memory (nothing is downloaded)."""
    import datasets

    return {
        "task": name,
        "custom_dataset": lambda **_: datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)}),
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "{{context}}",
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "{{label}}",
        "target_delimiter": " ",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1.0},
    }
