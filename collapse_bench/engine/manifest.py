"""The run directory's manifest: written before training starts, stamped when the run ends."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from collapse_bench.contexts import RealData
from collapse_bench.keys import dependencies_digest
from collapse_bench.plan import ChosenComponent, Plan, RunConfig
from collapse_bench.store import RunDir


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _declared(component: ChosenComponent) -> dict[str, Any]:
    """What a component declared it reads, and the digest of it that entered the cache keys."""
    instance = component.make()
    digest_ = dependencies_digest(instance, component.who)  # first: a failing dependencies() becomes a clean error
    return {"declared": [str(d) for d in instance.dependencies()], "sha256": digest_}


def manifest(plan: Plan, config: RunConfig, real: RealData, run_id: str, argv: Sequence[str]) -> dict[str, Any]:
    """Everything needed to reproduce and to trust the run."""
    from collapse_bench.provenance import git_commit, hardware, package_versions

    metrics = [c for c in plan.components() if c.registered.kind == "metric"]
    instances = {m.label: m.make() for m in metrics}
    return {
        "run_id": run_id,
        "status": "running",
        "started": _now(),
        "command": list(argv),
        "config": config.to_dict(),
        "label": plan.protocol.label,  # what ran: name@version and every result-shaping override
        "protocol": plan.protocol.to_dict(),
        "fingerprint": plan.protocol.fingerprint,
        "models": [m.label for m in plan.models],
        "mixers": [m.label for m in plan.mixers],
        "metrics": {label: [m.label for m in ms] for label, ms in plan.metrics.items()},
        "seeds": plan.seeds,
        "directions": {k: v for m in instances.values() for k, v in m.directions().items()},
        "headline": [[label, m.headlines()] for label, m in instances.items()],  # pairs: the order is kept
        "plugins": [
            {
                "kind": c.registered.kind,
                "spec": str(c.spec),
                "plugin": c.registered.plugin,
                "distribution": c.registered.distribution,
                "version": c.registered.version,
                "dependencies": _declared(c),
            }
            for c in plan.components()
        ],
        "data": real.describe(),
        "packages": package_versions(),
        "git_commit": git_commit(),
        "hardware": hardware(),
    }


def finish(run: RunDir, status: str, error: str | None = None) -> None:
    """Stamp the manifest with the end time and how the run ended."""
    m = run.manifest()
    m.update(status=status, ended=_now())
    if error:
        m["error"] = error
    run.write_manifest(m)
