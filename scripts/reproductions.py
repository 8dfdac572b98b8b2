"""The tables of docs/reproductions.md: measured means with Student t intervals beside the closed forms.

Run by hand after the runs named in docs/reproductions.md (needs scipy, in the ``test`` extra)::

    python scripts/reproductions.py theory RUN_DIR
    python scripts/reproductions.py absorption RUN_DIR
    python scripts/reproductions.py regression RUN_DIR
    python scripts/reproductions.py qiao RUN_DIR [QIAO_ALL_RUNS_CSV]
    python scripts/reproductions.py curation RUN_DIR

Each prints Markdown. Intervals are 95% Student t intervals over seeds (the honest choice with few
seeds); a quantity every seed shares (generation 0) has none.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from collapse_bench import load_results
from collapse_bench.data import prepare
from collapse_bench.plugins import get_registry


def interval(values: np.ndarray, digits: int = 3) -> str:
    """``mean [low, high]``: the 95% t interval of the mean of ``values``."""
    values = np.asarray(values, dtype=float)
    mean = values.mean()
    if len(values) < 2 or values.std() <= 1e-12 * abs(mean):
        return f"{mean:.{digits}f}"
    low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=stats.sem(values))
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def curves(run: Path, metric: str) -> dict[str, pd.DataFrame]:
    """Per mixer, a seeds x generations table of ``metric``."""
    df = load_results(run)
    df = df[df.metric == metric]
    return {m: d.pivot_table(index="seed", columns="generation", values="value") for m, d in df.groupby("mixer")}


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def theory(run: Path) -> str:
    """Shumailov et al.: E[tr Sigma_t / tr Sigma_0] = (1 - 1/M)^t under replace, MLE refits of M points."""
    m = get_registry().protocol("theory").samples
    c = curves(run, "variance.ratio")
    rows = []
    for t in (1, 5, 10, 20):
        if t in c["replace"]:
            rows.append([str(t), f"{(1 - 1 / m) ** t:.3f}", interval(c["replace"][t]), interval(c["accumulate"][t])])
    seeds = len(c["replace"])
    return table(["t", "(1 - 1/M)^t", f"replace ({seeds} seeds)", "accumulate"], rows)


def absorption(run: Path) -> str:
    """Shumailov et al.: a type whose count reaches 0 never returns, so coverage never rises."""
    c = curves(run, "tail.type_coverage")["replace"]
    steps = np.diff(c.to_numpy(), axis=1)
    rows = [[str(g), interval(c[g])] for g in c.columns]
    note = f"\n\nrises of coverage between consecutive generations: {int((steps > 0).sum())} of {steps.size}"
    return table(["generation", f"tail.type_coverage ({len(c)} seeds)"], rows) + note


def regression(run: Path) -> str:
    """Gerstgrasser et al. / Dohmatob et al.: error growth sigma^2 tr((X^T X)^-1) per generation."""
    protocol = get_registry().protocol("gerstgrasser2024")
    dataset = get_registry().component("dataset", protocol.dataset.name)(**protocol.dataset.params)
    x = prepare(dataset, protocol).train[:, :-1]
    c = float(np.trace(np.linalg.inv(x.T @ x)))  # sigma = 1
    cv = curves(run, "regression.error")
    rep, acc = cv["replace"], cv["accumulate"]
    err0 = float(rep[0].iloc[0])
    rows = []
    for t in (1, 5, 10, 20):
        if t in rep:
            closed_acc = err0 + c * sum(1 / k**2 for k in range(2, t + 2))
            rows.append([str(t), f"{err0 + t * c:.4f}", interval(rep[t], 4), f"{closed_acc:.4f}", interval(acc[t], 4)])
    t = np.arange(rep.shape[1])
    slopes = (rep.to_numpy() - err0) @ t / (t @ t)
    out = table(
        ["t", "replace: err_0 + t c", f"replace ({len(rep)} seeds)", "accumulate: err_0 + c sum 1/k^2", "accumulate"],
        rows,
    )
    return (
        out + f"\n\nc = sigma^2 tr((X^T X)^-1) = {c:.4f}; err_0 = {err0:.4f} (shared by all seeds); "
        f"replace slope per generation {interval(slopes, 4)}; pi^2/6 c = {np.pi**2 / 6 * c:.4f}"
    )


def qiao(run: Path, published: Path | None) -> str:
    """Qiao et al.: tr(Sigma_t) / tr(Sigma_0) in the four settings, beside their published runs."""
    cv = curves(run, "variance.ratio")
    names = {
        "replace": "Replace",
        "accumulate": "Accumulate",
        "select": "Replace + Select",
        "select-accumulate": "Accumulate + Select",
    }
    ours = {}
    for mixer, c in cv.items():
        key = "select-accumulate" if "pool=accumulate" in mixer else "select" if mixer.startswith("select") else mixer
        ours[names[key]] = c
    theirs: dict[str, pd.DataFrame] = {}
    if published is not None:
        df = pd.read_csv(published)
        first = df[df.iteration == 0].set_index(["setting", "run"]).variance
        df["ratio"] = df.variance / first.loc[list(zip(df.setting, df.run, strict=True))].to_numpy()
        theirs = {s: d.pivot_table(index="run", columns="iteration", values="ratio") for s, d in df.groupby("setting")}
    rows = []
    for setting in names.values():
        for t in (1, 10, 20, 50, 100):
            if t in ours[setting]:
                there = interval(theirs[setting][t]) if setting in theirs else ""
                rows.append([setting, str(t), interval(ours[setting][t]), there])
    seeds = len(next(iter(ours.values())))
    return table(["setting", "t", f"collapse-bench ({seeds} seeds)", "Qiao et al. CSV (10 runs)"], rows)


def curation(run: Path) -> str:
    """Replace against select under the three text verifiers: last generation's values."""
    df = load_results(run)
    last = df.generation.max()
    rows = []
    for metric in ("perplexity", "tail.type_coverage", "unigram-divergence.js", "repetition.seq_rep_4"):
        values = df[df.metric == metric]
        first = values[(values.generation == 0) & (values.mixer == values.mixer.iloc[0])].value.to_numpy()
        for mixer, d in values[values.generation == last].groupby("mixer"):
            rows.append([metric, mixer, interval(first), interval(d.value.to_numpy())])
    seeds = df.seed.nunique()
    return table(["metric", "mixer", "generation 0", f"generation {last} ({seeds} seeds)"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["theory", "absorption", "regression", "qiao", "curation"])
    parser.add_argument("run", type=Path)
    parser.add_argument("published", type=Path, nargs="?")
    args = parser.parse_args()
    if args.what == "qiao":
        print(qiao(args.run, args.published))
    else:
        print(globals()[args.what](args.run))


if __name__ == "__main__":
    main()
