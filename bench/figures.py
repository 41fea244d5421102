"""Figures a benchmark reports to `bench/run_all.py` (`make bench`), which prints them
side by side for SQLite and PostgreSQL. A bench prints its own lines as well; this only
adds a machine-readable copy when the runner asked for one (BENCH_FIGURES)."""

from __future__ import annotations

import json
import os


def figure(name: str, value: float | str, *, goal: str, ok: bool, unit: str = "") -> None:
    """One figure with its goal, e.g. figure("200 jobs / one job", 1.09, goal="≤ 1.3×",
    ok=True, unit="×")."""
    path = os.environ.get("BENCH_FIGURES")
    if not path:
        return
    shown = f"{value:.2f}" if isinstance(value, float) else str(value)
    line = {"name": name, "value": f"{shown}{unit}", "goal": goal, "ok": bool(ok)}
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
