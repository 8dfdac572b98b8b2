"""Cache keys: a step's key is the hash of everything that produced it.

Every key of a grid is known before anything runs (it hashes inputs, not outputs), so the
driver hands workers complete, self-describing steps (:mod:`collapse_bench.engine.graph`).

What a component contributes to a key besides its SPEC: its code and the inputs it declares.

A cached result may be reused only if nothing that produced it changed. Two things beyond a
component's parameters can change under the same SPEC:

* **its code**: :func:`code_hash` hashes the module defining the component and every module of
  the same top-level package that it imports, transitively (``import`` statements anywhere in
  the code, functions included, ``if TYPE_CHECKING:`` blocks excluded). Third-party libraries
  are not hashed; their versions are recorded in the run's manifest.
* **what it reads**: files, folders and external revisions named by
  :meth:`collapse_bench.components.Component.dependencies`; :func:`dependencies_digest` hashes
  files and folders by content and takes other entries (e.g. a hub commit hash) as they are.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collapse_bench.cache import digest
from collapse_bench.errors import ComponentError, PluginError, UserError

if TYPE_CHECKING:
    from collapse_bench.plan import ChosenComponent, Plan


def _module_file(name: str) -> Path | None:
    """The source file of module ``name``, or ``None`` when it has none (built-in, namespace, missing).

    A module not imported yet is looked for in the folders of its imported top-level package,
    never imported itself: finding ``pkg.mod`` with importlib would run ``pkg.mod``'s imports.
    """
    module = sys.modules.get(name)
    if module is not None:
        origin = getattr(module, "__file__", None)
        return Path(origin) if origin and origin.endswith(".py") else None
    top, _, rest = name.partition(".")
    package = sys.modules.get(top)
    if package is not None and rest:
        for folder in getattr(package, "__path__", ()):
            base = Path(folder).joinpath(*rest.split("."))
            for candidate in (base.with_name(base.name + ".py"), base / "__init__.py"):
                if candidate.is_file():
                    return candidate
        return None
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    origin = spec.origin if spec is not None else None
    return Path(origin) if origin and origin.endswith(".py") else None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(name: str, path: Path) -> frozenset[str]:
    """Modules that ``import`` statements of module ``name`` (file ``path``) bring in.

    Parsed once per process and version of the file (every component's hash walks the same
    core modules); an edited file is parsed again.
    """
    return _imports_of(name, path, _stamp(path))


@functools.cache
def _imports_of(name: str, path: Path, stamp: tuple[str, int, int, int]) -> frozenset[str]:
    """:func:`_imported` for one version (``stamp``) of the file.

    Only names of ``name``'s own top-level package are resolved to submodules: another package
    is never hashed, and looking its names up would import it (transformers alone takes a second).
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    top = name.partition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            own = base.partition(".")[0] == top
            for alias in node.names:
                # `from pkg import sub` uses the submodule pkg.sub, `from mod import f` the module mod.
                sub = f"{base}.{alias.name}"
                found.add(sub if own and alias.name != "*" and _module_file(sub) is not None else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_bytes(), str(path)))
    return frozenset(found)


def code_modules(module: str) -> dict[str, Path]:
    """Module ``module`` and every module of its top-level package that it imports, transitively."""
    top = module.partition(".")[0]
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or name.partition(".")[0] != top:
            continue
        path = _module_file(name)
        if path is None:
            continue
        seen[name] = path
        todo.extend(_imported(name, path))
    return dict(sorted(seen.items()))


def _defining_file(cls: type) -> dict[str, Path]:
    """The file of a class whose module is not importable by name (a file loaded from a plugins folder)."""
    for value in vars(cls).values():
        code = getattr(getattr(value, "__func__", value), "__code__", None)
        if code is not None and code.co_filename.endswith(".py") and Path(code.co_filename).is_file():
            return {cls.__module__: Path(code.co_filename)}
    return {}


@functools.cache
def code_hash(cls: type) -> str:
    """Hash of the code a component runs: see :func:`code_modules` (16 hex digits)."""
    try:
        modules = code_modules(cls.__module__) or _defining_file(cls)
        if not modules:  # defined outside any file (e.g. interactively)
            return "unknown"
        h = hashlib.sha256()
        for name, path in modules.items():
            h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
        return h.hexdigest()[:16]
    except (OSError, SyntaxError, ValueError):
        return "unknown"


#: Hashes of files already read, by (path, size, modification time, inode): a file is read once
#: per process however many steps it takes part in, and again whenever it changes.
_FILE_HASHES: dict[tuple[str, int, int, int], str] = {}


def _stamp(path: Path) -> tuple[str, int, int, int]:
    """A version of a file: its path, size, modification time and inode (changes when it is edited)."""
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


def _file_hash(path: Path) -> str:
    stamp = _stamp(path)
    if stamp not in _FILE_HASHES:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _FILE_HASHES[stamp] = h.hexdigest()
    return _FILE_HASHES[stamp]


def _content(entry: str | os.PathLike) -> Any:
    if not isinstance(entry, os.PathLike):
        return entry
    path = Path(entry).expanduser()
    if path.is_file():
        return _file_hash(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return {str(p.relative_to(path)): _file_hash(p) for p in files}
    return "missing"


def dependencies_digest(component: Any, who: str) -> str:
    """SHA-256 over what ``component.dependencies()`` declares (see the module docstring)."""
    try:
        declared: Iterable[Any] = component.dependencies()
        entries = list(declared)
    except UserError:
        raise
    except Exception as exc:
        raise ComponentError(who, "dependencies()", exc) from exc
    bad = [e for e in entries if not isinstance(e, str | os.PathLike)]
    if bad:
        raise PluginError(
            f"{who} declared {bad[0]!r} in dependencies()",
            "return paths (pathlib.Path, hashed by content) and strings (identifiers such as a revision)",
        )
    h = hashlib.sha256()
    for entry in entries:
        kind = "path" if isinstance(entry, os.PathLike) else "id"
        h.update(repr((kind, str(entry), _content(entry))).encode())
    return h.hexdigest()


def identity(component: ChosenComponent) -> dict[str, Any]:
    """What a component contributes to a content address: full SPEC, origin, code and declared inputs."""
    return {
        "spec": str(component.spec),
        "origin": component.registered.origin,
        "code": code_hash(component.registered.obj),
        "dependencies": dependencies_digest(component.make(), component.who),
    }


def data_inputs(plan: Plan) -> dict[str, Any]:
    """What the prepared real data (split and tokenizer) depends on: the dataset and the ``[data]`` table."""
    return {"dataset": identity(plan.dataset), "data": plan.protocol.to_dict()["data"]}


def root_inputs(plan: Plan, data_hashes: dict[str, str]) -> dict[str, Any]:
    """What every step of a run shares: the protocol fields that shape results, the data and what the dataset read."""
    settings = plan.protocol.to_dict()
    shaping = {k: settings[k] for k in ("dataset", "data", "samples", "decoding", "training")}
    dataset = dependencies_digest(plan.dataset.make(), plan.dataset.who)
    return {"protocol": shaping, "data": data_hashes, "dataset": dataset}


def step_key(
    root: dict[str, Any],
    model: ChosenComponent,
    mixer: ChosenComponent | None,
    seed: int,
    generation: int,
    parent: str | None,
    candidates: int | None = None,
) -> tuple[str, dict[str, Any]]:
    """The content address of a generation: everything that produced it, parent step included.

    ``candidates``, the rows the generation draws, enters only when a mixer over-generates (it
    differs from the protocol's ``samples``), so the addresses of plain runs stay as they were.
    """
    inputs: dict[str, Any] = {**root, "model": identity(model), "seed": seed, "generation": generation}
    if mixer is not None:
        inputs.update(parent=parent, mixer=identity(mixer))
    if candidates is not None and candidates != root["protocol"]["samples"]:
        inputs["candidates"] = candidates
    return digest(inputs), inputs


def metric_key(metric: ChosenComponent) -> str:
    """The address of one metric's scores within a step."""
    return digest(identity(metric))


def verifier_key(verifier: ChosenComponent, candidates: int) -> str:
    """The address of one verifier's scores of a step's ``candidates`` rows."""
    return digest({**identity(verifier), "candidates": candidates})
