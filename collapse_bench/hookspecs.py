"""The plugin contract of collapse-bench: every hook a plugin can implement.

This module is the reference documentation for plugin authors. A plugin is any module or object
with functions decorated by :data:`hookimpl` (also ``collapse_bench.hookimpl``) and named after
a hook below. Third-party packages make themselves known through the ``collapse_bench`` entry-point group::

    # pyproject.toml of your package
    [project.entry-points.collapse_bench]
    my_plugin = "my_package.plugin"

Built-in components are registered by ordinary plugin modules (``collapse_bench.builtin.*``)
through exactly these hooks.

Each ``register_*`` hook receives a ``register`` callable. Call it once per component you
provide. The core records which plugin registered what, and refuses two components of one kind
with the same name, naming both plugins.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pluggy

from collapse_bench.components import Component, Dataset, Metric, Mixer, Model, Verifier

hookspec = pluggy.HookspecMarker("collapse_bench")
#: Decorator for plugin hook implementations (re-exported as ``collapse_bench.hookimpl``).
hookimpl = pluggy.HookimplMarker("collapse_bench")

#: Every kind of component, with the base class a registered one subclasses (``None``: a
#: protocol, registered as the path of its TOML file). Kind ``k`` is registered by hook
#: ``register_<k>s``.
KINDS: dict[str, type[Component] | None] = {
    "dataset": Dataset,
    "model": Model,
    "mixer": Mixer,
    "metric": Metric,
    "verifier": Verifier,
    "protocol": None,
}
#: The hook that registers each kind.
HOOKS = {kind: f"register_{kind}s" for kind in KINDS}


@hookspec
def register_datasets(register: Callable[[type[Dataset]], None]) -> None:
    """Register dataset classes: where real data comes from.

    :param register: call with each :class:`~collapse_bench.components.Dataset` subclass.

    Example::

        from collapse_bench import Dataset, hookimpl

        class Sonnets(Dataset):
            "Shakespeare's sonnets, one document each."
            name = "sonnets"
            modality = "text"

            def __init__(self, *, path: str = "sonnets.txt") -> None:
                self.path = path

            def load(self) -> list[str]:
                return open(self.path).read().split("\\n\\n")

        @hookimpl
        def register_datasets(register):
            register(Sonnets)
    """


@hookspec
def register_models(register: Callable[[type[Model]], None]) -> None:
    """Register generative model classes, trained anew at every generation.

    :param register: call with each :class:`~collapse_bench.components.Model` subclass. The
        keyword-only parameters of its ``__init__`` (with annotations and defaults) are what users
        may set in a SPEC such as ``ngram:order=4``.

    Example::

        @hookimpl
        def register_models(register):
            register(MyModel)
    """


@hookspec
def register_mixers(register: Callable[[type[Mixer]], None]) -> None:
    """Register data-mixing strategies that build each generation's training set.

    :param register: call with each :class:`~collapse_bench.components.Mixer` subclass.

    Example::

        @hookimpl
        def register_mixers(register):
            register(KeepBestMixer)
    """


@hookspec
def register_metrics(register: Callable[[type[Metric]], None]) -> None:
    """Register collapse metrics computed at every generation.

    :param register: call with each :class:`~collapse_bench.components.Metric` subclass. Its
        ``outputs`` declare every value it reports and whether higher or lower is better.

    Example::

        @hookimpl
        def register_metrics(register):
            register(SelfBleu)
    """


@hookspec
def register_verifiers(register: Callable[[type[Verifier]], None]) -> None:
    """Register verifiers: scorers of candidate synthetic rows that curation mixers select by.

    :param register: call with each :class:`~collapse_bench.components.Verifier` subclass. Its
        ``modalities`` and ``requires`` (model capabilities such as ``loglik``) are checked
        against the run's data and models before anything is trained; ``score`` returns one
        finite float per row, higher = keep. Mixers name verifiers by SPEC, e.g.
        ``select:verifier=short-rows,keep=0.5``.

    Example::

        from collapse_bench import Verifier, hookimpl

        class ShortRows(Verifier):
            "Prefers vectors of small norm."
            name = "short-rows"
            modalities = frozenset({"vector"})

            def score(self, rows, ctx):
                return -np.linalg.norm(rows, axis=1)

        @hookimpl
        def register_verifiers(register):
            register(ShortRows)
    """


@hookspec
def register_protocols(register: Callable[[Path], None]) -> None:
    """Register protocol files: named, versioned TOML recipes (see ``docs/protocol.md``).

    :param register: call with the path of each protocol TOML file; its name comes from the
        file's ``name`` field.

    Example::

        @hookimpl
        def register_protocols(register):
            register(Path(__file__).parent / "protocols" / "wikitext.toml")
    """
