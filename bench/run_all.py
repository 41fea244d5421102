"""`make bench`: every benchmark on SQLite and on PostgreSQL, then one table of every
figure with its goal, side by side, and a non-zero exit when any figure missed its goal
(or a bench failed, or PostgreSQL could not be reached).

    make bench
    .venv/bin/python bench/run_all.py --only pages_bench --engines postgresql
    BENCH_POSTGRES_URL=postgres://user:pw@host:5432/db .venv/bin/python bench/run_all.py

PostgreSQL is the one BENCH_POSTGRES_URL names (default: the role and database
scripts/postgres_up.sh makes); each bench creates and drops throwaway databases next to
it (bench/throwaway_db.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# In the order they run: the quick ones first, so a broken set-up shows early.
BENCHES = [
    "sync_bench",
    "job_cost_bench",
    "job_history_bench",
    "workshop_bench",
    "copy_bench",
    "pages_bench",
    "page_cpu_bench",
    "snapshot_jobs_bench",
    "load_bench",
]
# Benches that touch no database: their figures do not depend on the engine, run once.
NO_DATABASE = {"copy_bench"}
# Benches the issue asks for on PostgreSQL only (a served portal under load).
POSTGRES_ONLY = {"load_bench"}
DEFAULT_POSTGRES = "postgres://portal:portal@127.0.0.1:5432/portal"
ENGINES = ("sqlite", "postgresql")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="", help="comma-separated bench names")
    parser.add_argument("--engines", default=",".join(ENGINES))
    args = parser.parse_args()
    benches = [b for b in BENCHES if (ROOT / "bench" / f"{b}.py").exists()]
    if args.only:
        benches = [b for b in benches if b in args.only.split(",")]
    engines = [e for e in args.engines.split(",") if e]
    postgres_url = os.environ.get("BENCH_POSTGRES_URL", DEFAULT_POSTGRES)
    problems = []
    if "postgresql" in engines and not _postgres_reachable(postgres_url):
        problems.append(f"PostgreSQL at {postgres_url} did not answer (scripts/postgres_up.sh)")
        engines.remove("postgresql")

    work = Path(tempfile.mkdtemp(prefix="bench-all-"))
    results: dict[tuple[str, str], dict] = {}
    for bench in benches:
        for engine in engines:
            if bench in NO_DATABASE and engine != engines[0]:
                continue
            if bench in POSTGRES_ONLY and engine != "postgresql":
                continue
            results[(bench, engine)] = _run(bench, engine, postgres_url, work)
    return _report(benches, engines, results, problems)


def _run(bench: str, engine: str, postgres_url: str, work: Path) -> dict:
    figures = work / f"{bench}-{engine}.jsonl"
    env = dict(os.environ, BENCH_FIGURES=str(figures))
    if engine == "postgresql":
        env["DATABASE_URL"] = postgres_url
    else:
        env.pop("DATABASE_URL", None)  # each bench then uses a SQLite file of its own
    label = "no database" if bench in NO_DATABASE else engine
    print(f"\n===== {bench} ({label}) =====", flush=True)
    started = time.monotonic()
    returncode = subprocess.run([sys.executable, f"bench/{bench}.py"], cwd=ROOT, env=env).returncode
    lines = figures.read_text(encoding="utf-8").splitlines() if figures.exists() else []
    return {
        "returncode": returncode,
        "seconds": time.monotonic() - started,
        "figures": [json.loads(line) for line in lines],
    }


def _report(benches, engines, results, problems) -> int:
    print("\n===== all figures =====")
    header = f"{'bench':<20} {'figure':<52} {'goal':<12}"
    for engine in engines:
        header += f" {engine:>16}"
    print(header)
    failed = list(problems)
    for bench in benches:
        names: list[str] = []
        by_engine = {}
        for engine in engines:
            result = results.get((bench, engine))
            if result is None:
                continue
            if result["returncode"] != 0:
                failed.append(f"{bench} on {engine} exited {result['returncode']}")
            by_engine[engine] = {f["name"]: f for f in result["figures"]}
            names += [f["name"] for f in result["figures"] if f["name"] not in names]
        for name in names:
            goal = next(by_engine[e][name]["goal"] for e in by_engine if name in by_engine[e])
            row = f"{bench:<20} {name[:52]:<52} {goal[:12]:<12}"
            for engine in engines:
                found = by_engine.get(engine, {}).get(name)
                if found is None:
                    cell = "—" if engine not in by_engine else "missing"
                else:
                    cell = found["value"] + ("" if found["ok"] else " MISSED")
                    if not found["ok"]:
                        failed.append(f"{bench} on {engine}: {name}")
                row += f" {cell:>16}"
            print(row)
    for bench, engine in results:
        if not results[(bench, engine)]["figures"]:
            failed.append(f"{bench} on {engine} reported no figures")
    if failed:
        print("\nmissed or failed:")
        for line in dict.fromkeys(failed):
            print(f"  {line}")
        return 1
    print("\nevery figure within its goal")
    return 0


def _postgres_reachable(url: str) -> bool:
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3):
            return True
    except Exception:
        return False


if __name__ == "__main__":
    sys.exit(main())
