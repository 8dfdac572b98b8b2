"""Downstream accuracy per generation: lm-evaluation-harness tasks on each generation's model."""

from __future__ import annotations

import difflib
import functools
import logging
from typing import TYPE_CHECKING, Any

from collapse_bench import HIGHER, LOGLIK, LOWER, Metric, MetricContext
from collapse_bench.errors import ConfigError
from collapse_bench_lmeval.next_word import questions, task_config

if TYPE_CHECKING:
    from collapse_bench.protocol import Protocol

#: The plugin's own task, built from the run's real test text; every other name is an lm-eval task.
OWN_TASK = "next-word"


class DownstreamMetric(Metric):
    """Accuracy (and its standard error) of M_g on a multiple-choice task, run by lm-evaluation-harness.

    The default task, ``next-word``, is built from the run's own real test split, so it needs
    nothing from outside: ``questions`` held-out lines, each asking which of ``choices`` words ends
    it (see :func:`collapse_bench_lmeval.next_word.questions`). Any other ``task`` is an lm-eval
    task by name (``hellaswag``, ``piqa``, ...), whose dataset lm-eval fetches when it is
    reachable; ``limit`` caps its questions (0: all). lm-eval asks for the log-likelihood of each
    choice after the question and counts a question right when the true choice has the highest:

    * ``<task>.acc = right / questions``
    * ``<task>.acc_stderr = sqrt(acc (1 - acc) / (questions - 1))``, lm-eval's standard error of a mean

    The model scores text through ``Model.nll`` on rows of the run's tokenizer, cut to the
    protocol's ``block_tokens`` (see :class:`collapse_bench_lmeval.lm.CollapseBenchLM`), so it
    works for every model with log-likelihoods: ``gpt``, ``hf``, and ``ngram`` too.
    """

    name = "downstream"
    modalities = frozenset({"text"})
    requires = frozenset({LOGLIK})
    outputs: dict[str, str] = {}

    def __init__(
        self, *, task: str = OWN_TASK, questions: int = 200, choices: int = 4, limit: int = 0, seed: int = 0
    ) -> None:
        """``task``: ``next-word`` or an lm-eval task name; ``questions``, ``choices``, ``seed``: the
        ``next-word`` task's size, options per question and distractor draw; ``limit``: most questions
        of an lm-eval task (0: all)."""
        for key, value, least in (("questions", questions, 1), ("choices", choices, 2), ("limit", limit, 0)):
            if value < least:
                raise ConfigError(f"downstream {key} is {value}", f"give {least} or more")
        if task != OWN_TASK:
            _check_task_name(task)
        self.task, self.questions, self.choices, self.limit, self.seed = task, questions, choices, limit, seed
        self.outputs = {f"{task}.acc": HIGHER, f"{task}.acc_stderr": LOWER}
        self.headline = (f"{task}.acc",)
        self._docs: list[dict[str, Any]] | None = None

    def check(self, protocol: Protocol) -> None:
        if self.task != OWN_TASK:
            _named_task(self.task)  # fetch the dataset now, so an unreachable one fails before training

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        logging.getLogger("lm_eval").setLevel(logging.ERROR)  # its notes on custom datasets are not for our users
        from lm_eval.api.task import ConfigurableTask
        from lm_eval.evaluator import evaluate

        from collapse_bench_lmeval.lm import CollapseBenchLM

        if ctx.real.tokenizer is None:
            raise ConfigError("the downstream metric needs the run's tokenizer", "use a text dataset")
        if self.task == OWN_TASK:
            if self._docs is None:
                text = ctx.real.decode(ctx.real.test.reshape(1, -1))[0]
                self._docs = questions(text, self.questions, self.choices, self.seed)
                if not self._docs:
                    raise ConfigError(
                        "the real test split has too few lines ending in a word for the next-word task",
                        "use a dataset with line breaks and a larger test split, or an lm-eval task (task=NAME)",
                    )
            task = ConfigurableTask(config=task_config(OWN_TASK, self._docs))
        else:
            task = _named_task(self.task)
        lm = CollapseBenchLM(ctx.model, ctx.real.tokenizer, ctx.real.test.shape[1])
        results = evaluate(
            lm, {self.task: task}, limit=self.limit or None, log_samples=False, verbosity="ERROR", bootstrap_iters=0
        )
        scores = results["results"][self.task]
        if "acc,none" not in scores:
            raise ConfigError(
                f"lm-eval task {self.task!r} reports no accuracy ({', '.join(k for k in scores if ',' in k)})",
                "choose a multiple-choice task",
            )
        n = len(self._docs) if self.task == OWN_TASK else int(results["n-samples"][self.task]["effective"])
        acc = float(scores["acc,none"])
        return {f"{self.task}.acc": acc, f"{self.task}.acc_stderr": _stderr(acc, n)}


def _stderr(acc: float, n: int) -> float:
    """Standard error of the mean of ``n`` 0/1 outcomes with mean ``acc`` (sample variance, as lm-eval's)."""
    return (acc * (1 - acc) / (n - 1)) ** 0.5 if n > 1 else float("inf")


@functools.cache
def _task_names() -> tuple[str, ...]:
    from lm_eval.tasks import TaskManager

    return tuple(TaskManager().all_tasks)


def _check_task_name(task: str) -> None:
    names = _task_names()
    if task not in names:
        close = difflib.get_close_matches(task, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"lm-eval has no task {task!r}",
            f"{hint}`lm-eval ls tasks` lists them; the offline default is task={OWN_TASK}",
        )


@functools.cache
def _named_task(task: str) -> Any:
    from lm_eval.tasks import TaskManager, get_task_dict

    try:
        return get_task_dict([task], TaskManager())[task]
    except Exception as exc:
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"lm-eval task {task!r} cannot be prepared: {cause}",
            f"its dataset must be reachable (Hugging Face hub or cache); offline, use task={OWN_TASK}",
        ) from None
