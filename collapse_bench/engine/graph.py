"""The grid as a graph of steps.

Generation 0 of each (model, seed) is one step, shared by every mixer; each mixer's chain
depends on it, and each later generation on the one before. Steps are small named objects that
travel to workers: they name their components by label and their ancestors by key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from collapse_bench.keys import root_inputs, step_key
from collapse_bench.plan import Plan


@dataclass(frozen=True)
class Cell:
    """One chain: a model, a mixer and a seed."""

    model: str
    mixer: str
    seed: int


@dataclass(frozen=True)
class StepSpec:
    """One trained and scored generation, with everything a worker needs to find its inputs."""

    key: str
    model: str
    #: ``None`` for generation 0, which every mixer shares.
    mixer: str | None
    seed: int
    generation: int
    #: Key of the previous generation (``None`` at generation 0).
    parent: str | None
    #: Keys of every earlier generation of the chain, oldest first: ``history[0]`` is generation 0.
    history: tuple[str, ...]
    #: Rows this generation's model draws: the protocol's ``samples``, or more for a mixer that
    #: over-generates (``Mixer.candidates``); its chain's generation 0 gives it as many too.
    candidates: int
    #: What produced it, stored with the cache entry.
    inputs: dict[str, Any] = field(compare=False, repr=False)

    @property
    def base(self) -> str | None:
        """Key of the chain's generation 0 (``None`` at generation 0)."""
        return self.history[0] if self.history else None

    @property
    def label(self) -> str:
        """How progress lines and failures name it."""
        return f"{self.model} | {self.mixer or 'every mixer'} | seed {self.seed} | generation {self.generation}"


class StepGraph:
    """Every step of a plan, in the order a single process runs them, with their cells and dependents."""

    def __init__(self, plan: Plan, data_hashes: dict[str, str], finished: set[Cell] = frozenset()) -> None:
        """The steps of every cell of ``plan`` but the ``finished`` ones (kept from an earlier attempt)."""
        root = root_inputs(plan, data_hashes)
        self.steps: list[StepSpec] = []
        #: The cells whose chain includes a step: every unfinished mixer's for generation 0, else one.
        self.cells: dict[str, list[Cell]] = {}
        self.dependents: dict[str, list[str]] = {}
        for model in plan.models:
            for seed in plan.seeds:
                todo = [m for m in plan.mixers if Cell(model.label, m.label, seed) not in finished]
                if not todo:
                    continue
                key, inputs = step_key(root, model, None, seed, 0, None)
                samples = plan.protocol.samples
                base = StepSpec(key, model.label, None, seed, 0, None, (), samples, inputs)
                self._add(base, [Cell(model.label, m.label, seed) for m in todo])
                for mixer in todo:
                    n = plan.candidates(mixer)
                    previous = base
                    for g in range(1, plan.protocol.generations):
                        key, inputs = step_key(root, model, mixer, seed, g, previous.key, n)
                        history = (*previous.history, previous.key)
                        step = StepSpec(key, model.label, mixer.label, seed, g, previous.key, history, n, inputs)
                        self._add(step, [Cell(model.label, mixer.label, seed)])
                        previous = step
        self.by_key = {s.key: s for s in self.steps}

    def _add(self, step: StepSpec, cells: list[Cell]) -> None:
        self.steps.append(step)
        self.cells[step.key] = cells
        self.dependents[step.key] = []
        if step.parent is not None:
            self.dependents[step.parent].append(step.key)

    def descendants(self, key: str) -> set[str]:
        """Every step that cannot run once ``key`` failed."""
        out: set[str] = set()
        todo = list(self.dependents[key])
        while todo:
            k = todo.pop()
            if k not in out:
                out.add(k)
                todo.extend(self.dependents[k])
        return out
