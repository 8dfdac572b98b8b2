"""The figures the docs quote are the ones benchmarks/readme_figures.py measures and writes in."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("readme_figures", ROOT / "benchmarks" / "readme_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_figure_marker_is_one_the_script_measures():
    figures = _script()
    run = {"cold": {"wall_s": 1.0, "cpu_s": 2.0, "peak_rss_mib": 3}, "rerun": {"wall_s": 0.5}}
    run["cache"] = {"disk_mib": 4.0, "files": 5}
    names = {*figures.GRID, *figures.SLOW}
    measured = figures.figures({"runs": dict.fromkeys(names, run), "tests": {"wall_s": 6.0}})
    assert measured["default_cold"] == "1 s (2 s of CPU)" and measured["theory_cache"] == "4 MiB in 5 files"
    quoted = set()
    for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        quoted |= {m[1] for m in figures.MARKER.finditer(path.read_text(encoding="utf-8"))}
    assert quoted and quoted <= set(measured), quoted - set(measured)


def test_the_tour_writes_nothing_into_the_repositorys_leaderboards():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "--out leaderboards/" not in readme and "--out runs/leaderboard.md" in readme
    tour = readme.split("## A tour of the command line", 1)[1].split("```")[1]
    assert "collapse-bench publish" in tour and "leaderboards/" not in tour
