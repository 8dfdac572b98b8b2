"""The pages of a leaderboard folder: ``README.md`` (the index), one markdown page per protocol, the web page.

Each is made from the standings of :func:`collapse_bench.published.protocols` alone, so a
published folder can always be regenerated from its bundles (``collapse-bench publish --check``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from collapse_bench import stats
from collapse_bench.boards import Standing
from collapse_bench.published import RESULTS, Published

#: Headline values shown beside the ranking value in a protocol's first table (8 columns in all).
HEADLINE_VALUES = 2


def _arrow(s: Standing, value: str) -> str:
    return {"higher": " ↑", "lower": " ↓"}.get(s.directions.get(value, ""), "")


def ranking_title(s: Standing) -> str:
    last = s.last_generation
    return f"{s.ranking} drift g{last}/g0" if s.by == "drift" else f"{s.ranking} g{last}"


def decoding_text(settings: dict) -> str:
    """The decoding settings that shape collapse, in words (temperature always stated)."""
    from collapse_bench.decoding import Decoding

    recorded = dict(settings.get("decoding") or {})
    strategy = recorded.get("strategy", Decoding().strategy)
    parts = [f"strategy {strategy}"]
    if strategy == "sample" and "temperature" not in recorded:
        parts.append("temperature 1 (default)")
    parts += [f"{k.replace('_', ' ')} {v}" for k, v in recorded.items() if k != "strategy"]
    return ", ".join(parts)


def _until(u: float | None, last: int) -> str:
    if u is None:
        return "—"
    return f"> {last}" if math.isinf(u) else f"{u:g}"


def page(p: Published, figures: dict[str, str]) -> str:
    """The markdown page of one protocol: heading facts, the headline table, one detail table per value."""
    from tabulate import tabulate

    s = p.standing
    settings = s.protocol
    last = s.last_generation
    seeds = sorted({len(e.seeds) for e in s.entries})
    methods = "; ".join(stats.METHODS[m] for m in s.methods)
    lines = [
        f"# {s.label}",
        "",
        settings.get("description", ""),
        "",
        f"Protocol `{p.name}` version {'+'.join(s.versions)}, fingerprint `{s.fingerprint}`; "
        f"{settings['generations']} generations of {settings['samples']} synthetic rows; "
        f"dataset `{settings['dataset']}`; "
        f"decoding: {decoding_text(settings)}. Seeds per entry: {', '.join(map(str, seeds))}. "
        f"Run data: {', '.join(f'[{f}]({RESULTS}/{f})' for f, _ in p.bundles)}. "
        f"Curves and sample text per entry: [site/index.html#{p.name}](site/index.html#{p.name}).",
        "",
        f"Ranked by {ranking_title(s)}{_arrow(s, s.ranking)}; intervals: {methods}. Entries whose intervals "
        f"overlap share a rank band (1-2). Δ: paired difference to the `{s.reference}` mixer of the same model "
        "(seeds pair: they share generation 0 and random streams).",
    ]
    if s.incomplete:
        lines.append(f"{s.incomplete} cell(s) that did not reach generation {last} are left out.")
    head = ["rank", "model", "mixer", "seeds", ranking_title(s) + _arrow(s, s.ranking), f"Δ vs {s.reference}"]
    shown = s.columns[:HEADLINE_VALUES]
    head += [f"{v} g{last}{_arrow(s, v)}" for v in shown]
    rows = []
    for e in s.entries:
        diff = stats.fmt(e.difference) if e.difference is not None else "—"
        row = [stats.band_label(e.band), e.model, e.mixer, len(e.seeds), stats.fmt(e.ranking), diff]
        row += [stats.fmt(e.values[v].last) if v in e.values else "—" for v in shown]
        rows.append(row)
    lines += ["", tabulate(rows, headers=head, tablefmt="pipe", disable_numparse=True)]
    for key, title in (("values", "by generation"), ("distribution", "distribution by generation")):
        if key in figures:
            lines += ["", f"![{s.label}: {title}]({figures[key]})"]
    thresholds = (settings.get("leaderboard") or {}).get("thresholds") or {}
    for value in [s.ranking, *s.columns]:
        entries = [e for e in s.entries if value in e.values]
        if not entries:
            continue
        until = f"generations until x{thresholds[value]:g}" if value in thresholds else None
        head = ["model", "mixer", "g0", f"g{last}", f"drift g{last}/g0", "area (mean ln ratio)"]
        head += [until] if until else []
        rows = []
        for e in entries:
            v = e.values[value]
            row = [e.model, e.mixer, stats.fmt(e.curves[value][0]), stats.fmt(v.last), stats.fmt(v.drift)]
            row += [stats.fmt(v.area)] + ([_until(v.until, last)] if until else [])
            rows.append(row)
        lines += ["", f"## {value}{_arrow(s, value)}", ""]
        lines.append(tabulate(rows, headers=head, tablefmt="pipe", disable_numparse=True))
    lines += [
        "",
        "Drift: value at the last generation over generation 0. Area: mean over generations 0..N of ln(value / "
        "generation-0 value). Generations until xt: first generation whose ratio to generation 0 reaches t "
        "(median over seeds; > N: not reached). inf and nan: a value that is not finite (a model that gives "
        "real text zero probability has infinite perplexity); such entries are not ranked.",
    ]
    return "\n".join(lines) + "\n"


def index(published: Sequence[Published]) -> str:
    """``README.md`` of the leaderboard folder: every protocol and its leaders."""
    lines = [
        "# collapse-bench leaderboards",
        "",
        "Generated by `collapse-bench publish` from the bundles in [results/](results/); do not edit by hand. "
        "Browse them at [site/index.html](site/index.html).",
        "",
        "| protocol | fingerprint | entries | seeds | ranked by | leaders (rank band 1) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for p in published:
        s = p.standing
        leaders = ", ".join(f"{e.name} {stats.fmt(e.ranking)}" for e in s.entries if e.band[0] == 1)
        seeds = "/".join(map(str, sorted({len(e.seeds) for e in s.entries})))
        lines.append(
            f"| [{s.label}]({p.name}.md) | `{s.fingerprint}` | {len(s.entries)} | {seeds} | "
            f"{ranking_title(s)}{_arrow(s, s.ranking)} | {leaders} |"
        )
    return "\n".join(lines) + "\n"


def _site_data(p: Published, figures: dict[str, str]) -> dict:
    """What the web page shows of one protocol, as plain data for its script."""
    s = p.standing
    samples: dict[tuple[str, str], dict[int, str]] = {}
    for _, b in p.bundles:
        for smp in sorted(b.samples, key=lambda x: x.seed, reverse=True):  # the lowest seed wins
            if smp.rows:
                samples.setdefault((smp.model, smp.mixer), {})[smp.generation] = smp.rows[0]

    def num(x: float | None) -> float | None:
        return x if x is not None and math.isfinite(x) else None

    return {
        "name": p.name,
        "label": s.label,
        "fingerprint": s.fingerprint,
        "description": s.protocol.get("description", ""),
        "decoding": decoding_text(s.protocol),
        "ranking": ranking_title(s) + _arrow(s, s.ranking),
        "reference": s.reference,
        "methods": "; ".join(stats.METHODS[m] for m in s.methods),
        "columns": [f"{v} g{s.last_generation}{_arrow(s, v)}" for v in s.columns[:HEADLINE_VALUES]],
        "figures": {k: v.removeprefix("site/") for k, v in figures.items()},
        "results": [f"../{RESULTS}/{f}" for f, _ in p.bundles],
        "entries": [
            {
                "band": stats.band_label(e.band),
                "best": e.band[0],
                "model": e.model,
                "mixer": e.mixer,
                "seeds": len(e.seeds),
                "ranking": stats.fmt(e.ranking),
                "ranking_value": num(e.ranking.mean),
                "difference": stats.fmt(e.difference) if e.difference is not None else "—",
                "difference_value": num(e.difference.mean) if e.difference is not None else None,
                "columns": [
                    [stats.fmt(e.values[v].last), num(e.values[v].last.mean)] if v in e.values else ["—", None]
                    for v in s.columns[:HEADLINE_VALUES]
                ],
                "curves": {
                    v: [[num(c.mean), num(c.low), num(c.high)] for c in e.curves[v]]
                    for v in [s.ranking, *s.columns]
                    if v in e.curves
                },
                "samples": [[g, text] for g, text in sorted(samples.get((e.model, e.mixer), {}).items())],
            }
            for e in s.entries
        ],
    }


def site(published: Sequence[Published], figures: dict[str, dict[str, str]]) -> str:
    """``site/index.html``: the tables, figures and per-entry details, data embedded (works from file://)."""
    import json
    from importlib.resources import files

    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(files("collapse_bench") / "site")),
        autoescape=jinja2.select_autoescape(["html"]),
        keep_trailing_newline=True,
    )
    data = [_site_data(p, figures.get(p.name, {})) for p in published]
    text = json.dumps(data, sort_keys=True, ensure_ascii=False).replace("</", "<\\/")
    return env.get_template("index.html").render(protocols=data, data=text)
