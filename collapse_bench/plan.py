"""Planning a run: choose every component by SPEC, validate it, and cross-check the grid.

Nothing in a :class:`Plan` can fail for a configuration reason once training starts: every
parameter is converted and checked, every component constructed once and asked to ``check()``
the protocol, and every metric matched with the models it can score.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from collapse_bench import validators
from collapse_bench.components import Metric, Mixer, Model, Verifier
from collapse_bench.errors import ComponentError, ConfigError, PluginError, UserError
from collapse_bench.plugins import Registered, Registry
from collapse_bench.protocol import Protocol
from collapse_bench.specs import Spec, declared_params, resolve_params


@dataclass
class ChosenComponent:
    """A component chosen by SPEC: its registration and its validated parameters, defaults filled."""

    spec: Spec
    registered: Registered

    def make(self) -> Any:
        """A fresh instance of the component."""
        return self.registered.obj(**self.spec.params)

    @property
    def who(self) -> str:
        """How errors name it: kind, label and where it comes from."""
        return f"{self.registered.kind} {self.label!r} ({self.registered.origin})"

    @functools.cached_property
    def label(self) -> str:
        """The canonical SPEC, as shown in results and leaderboards: parameters left at their default omitted."""
        declared = declared_params(self.registered.obj)
        return str(Spec(self.spec.name, {k: v for k, v in self.spec.params.items() if declared[k].default != v}))


@contextmanager
def blame(who: str, action: str) -> Iterator[None]:
    """Turn an exception raised by plugin code into a :class:`ComponentError` naming the plugin."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        raise ComponentError(who, action, exc) from exc


@dataclass
class Plan:
    """A fully validated run."""

    protocol: Protocol
    dataset: ChosenComponent
    models: list[ChosenComponent]
    mixers: list[ChosenComponent]
    #: Metrics that apply to each model, by model label.
    metrics: dict[str, list[ChosenComponent]]
    seeds: list[int]
    #: Verifiers the mixers name, by the SPEC each mixer wrote.
    verifiers: dict[str, ChosenComponent] = field(default_factory=dict)

    def components(self) -> Iterator[ChosenComponent]:
        """Every component of the plan once: dataset, models, mixers, metrics, verifiers."""
        yield self.dataset
        yield from self.models
        yield from self.mixers
        yield from {m.label: m for ms in self.metrics.values() for m in ms}.values()
        yield from {v.label: v for v in self.verifiers.values()}.values()

    def candidates(self, mixer: ChosenComponent) -> int:
        """Rows each generation's model draws in ``mixer``'s chains: ``samples``, or more if it over-generates."""
        with blame(mixer.who, "candidates()"):
            n = mixer.make().candidates(self.protocol.samples)
        return validators.candidates(n, self.protocol.samples, mixer.who)


def choose(registry: Registry, kind: str, text: str) -> ChosenComponent:
    """Look up a SPEC, validate its parameters and construct it once to run its own checks."""
    spec = Spec.parse(text)
    registered = registry.get(kind, spec.name)
    chosen = ChosenComponent(Spec(spec.name, resolve_params(registered.obj, spec, kind)), registered)
    try:
        chosen.make()
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{kind} {text!r} rejected its parameters: {exc}", "see `collapse-bench list` for its parameters"
        ) from None
    except UserError:
        raise
    except Exception as exc:
        raise ComponentError(f"{kind} {text!r} ({registered.origin})", "__init__()", exc) from exc
    return chosen


def _applicable(model: ChosenComponent, metric: ChosenComponent) -> str | None:
    """Why ``metric`` cannot score ``model``, or ``None`` when it can."""
    cls: type[Model] = model.registered.obj
    mcls: type[Metric] = metric.registered.obj
    if cls.modality not in mcls.modalities:
        return f"it applies to {'/'.join(sorted(mcls.modalities))} data, not {cls.modality}"
    missing = sorted(mcls.requires - cls.capabilities)
    if missing:
        return f"it needs {', '.join(missing)}, which model {model.label!r} does not provide"
    return None


def make_plan(
    registry: Registry,
    protocol: Protocol,
    models: Sequence[str] = (),
    mixers: Sequence[str] = (),
    metrics: Sequence[str] = (),
) -> Plan:
    """Choose and cross-check every component before anything is loaded or trained."""
    dataset = choose(registry, "dataset", str(protocol.dataset))
    modality = dataset.registered.obj.modality
    model_list = [choose(registry, "model", m) for m in models or protocol.models]
    mixer_list = [choose(registry, "mixer", m) for m in mixers or protocol.mixers]
    for kind, items in (("model", model_list), ("mixer", mixer_list)):
        labels = [r.label for r in items]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"the same {kind} is given twice: {', '.join(labels)}", f"give each {kind} once")
    explicit = bool(metrics)
    metric_list = [choose(registry, "metric", m) for m in metrics or protocol.metrics]
    plan_metrics: dict[str, list[ChosenComponent]] = {}
    for model in model_list:
        cls: type[Model] = model.registered.obj
        if cls.modality != modality:
            raise ConfigError(
                f"model {model.label!r} works on {cls.modality} data, but dataset {dataset.label!r} is {modality}",
                f"pick a {modality} model or a protocol with a {cls.modality} dataset",
            )
        chosen = []
        for metric in metric_list:
            reason = _applicable(model, metric)
            if reason is None:
                chosen.append(metric)
            elif explicit:
                raise ConfigError(
                    f"metric {metric.label!r} cannot score model {model.label!r}: {reason}",
                    "drop that --metric or pick another model",
                )
        if not chosen:
            raise ConfigError(
                f"no metric of protocol {protocol.label} applies to model {model.label!r}", "name metrics with --metric"
            )
        plan_metrics[model.label] = chosen
    verifiers = _verifiers(registry, mixer_list, model_list, modality)
    plan = Plan(protocol, dataset, model_list, mixer_list, plan_metrics, list(range(protocol.seeds)), verifiers)
    reported: dict[str, str] = {}  # qualified value -> the label of the metric reporting it
    for item in plan.components():
        if item is not dataset:
            with blame(item.who, "check()"):
                instance = item.make()
                instance.check(protocol)
            if isinstance(instance, Metric) and not set(instance.headline) <= set(instance.outputs):
                raise PluginError(
                    f"{item.who} declares headline values "
                    f"{sorted(set(instance.headline) - set(instance.outputs))} that are not among its outputs",
                    "name only declared outputs in `headline`",
                )
            if isinstance(instance, Metric):
                for value in map(instance.qualified, instance.outputs):
                    other = reported.setdefault(value, item.label)
                    if other != item.label:  # one would silently overwrite the other's records
                        raise ConfigError(
                            f"metrics {other!r} and {item.label!r} both report {value!r}",
                            "give only one of them per run (run the other into another run directory)",
                        )
    return plan


def _verifiers(
    registry: Registry, mixers: list[ChosenComponent], models: list[ChosenComponent], modality: str
) -> dict[str, ChosenComponent]:
    """Choose the verifiers every mixer names; refuse one that cannot score this data or these models."""
    out: dict[str, ChosenComponent] = {}
    for mixer in mixers:
        mix: Mixer = mixer.make()
        with blame(mixer.who, "verifiers()"):
            wanted = mix.verifiers()
        for text in wanted:
            if text not in out:
                out[text] = choose(registry, "verifier", text)
            vcls: type[Verifier] = out[text].registered.obj
            if modality not in vcls.modalities:
                raise ConfigError(
                    f"verifier {out[text].label!r} of mixer {mixer.label!r} applies to "
                    f"{'/'.join(sorted(vcls.modalities))} data, but this run's data is {modality}",
                    f"choose a verifier for {modality} data (`collapse-bench list` shows them)",
                )
            for model in models:
                missing = sorted(vcls.requires - model.registered.obj.capabilities)
                if missing:
                    raise ConfigError(
                        f"verifier {out[text].label!r} of mixer {mixer.label!r} needs {', '.join(missing)}, "
                        f"which model {model.label!r} does not provide",
                        "choose another verifier for that mixer, or another model",
                    )
    return out


@dataclass(frozen=True)
class RunConfig:
    """What the user asked for: enough to plan the same run again (resume, ``--retry-failed``, workers)."""

    protocol: str = "quick"
    models: tuple[str, ...] = ()
    mixers: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    dataset: str | None = None
    seeds: int | None = None
    generations: int | None = None
    #: ``--set FIELD=VALUE`` overrides of the protocol's fields.
    sets: tuple[str, ...] = ()
    #: Protocol fields replaced by value (``samples=...``), as the pytest fixture allows.
    overrides: dict[str, Any] = field(default_factory=dict)

    def make_plan(self, registry: Registry) -> Plan:
        """Resolve the protocol (the registry finds it; overrides applied) and every SPEC, and cross-check them."""
        protocol = registry.protocol(self.protocol, self.sets).override(
            seeds=self.seeds,
            generations=self.generations,
            dataset=Spec.parse(self.dataset) if self.dataset else None,
            **self.overrides,
        )
        return make_plan(registry, protocol, self.models, self.mixers, self.metrics)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as stored in a manifest (and compared on resume)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """The config stored in a manifest; a field added since it was written takes its default.

        A field this version does not know is refused (``ConfigError``): the run was configured
        by a collapse-bench that could do something this one cannot.
        """
        unknown = cls._unknown(data)
        if unknown:
            raise ConfigError(
                f"the run was configured with {', '.join(map(repr, unknown))}, which this collapse-bench does not know",
                "use the collapse-bench that made the run (its manifest lists the versions), or start a new run",
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    @classmethod
    def normalised(cls, data: dict[str, Any]) -> dict[str, Any] | None:
        """A stored config as this version writes it (:meth:`to_dict`, defaults filled in), for
        comparing on resume; ``None`` when it has a field this version does not know."""
        return None if cls._unknown(data) else cls.from_dict(data).to_dict()

    @classmethod
    def _unknown(cls, data: dict[str, Any]) -> list[str]:
        return sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
