"""Parallel speedup of the local bench backend: the same CPU-bound suite with N workers vs 1.

Each round runs `experiments/robustness/cpu_bound.toml` (four equal PPO trainings + evaluation)
into a fresh folder, once with 1 worker and once with `--workers` workers, alternating so
that drifting machine load hits both alike; the ratio of median wall times is reported.
Meaningful only on an otherwise idle machine (other jobs take the cores the pool needs).

    python experiments/perf/bench_workers_speedup.py --workers 2 --rounds 2
    python experiments/perf/bench_workers_speedup.py --from-csv   # only rebuild the speed.md cell

Every suite run (workers, round, jobs, wall seconds) is appended to
results/bench_workers_speedup.csv as it finishes, with the date and load average (timings.py);
the result cell of this script's row in results/speed.md is rebuilt from the CSV alone
(`cell`, the latest run unless `--run`), which experiments/check_results.py recomputes.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from timings import add_run_arguments, load_range, median, record, time_and_publish

SUITE = Path(__file__).resolve().parents[1] / "robustness" / "cpu_bound.toml"
NAME = "bench_workers_speedup"


def measure(workers: int, rounds: int, run: str) -> None:
    from robustrl.bench import run_suite

    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for n in (1, workers):
                summary = run_suite(SUITE, workers=n, out=Path(tmp) / f"r{r}w{n}")
                if summary.failures or summary.ran != summary.cells:
                    raise SystemExit(f"round {r}, {n} worker(s): {summary}")
                record(NAME, SUITE.name, f"{n} workers", r, summary.cells, summary.seconds,
                       workers=n, cores=os.cpu_count(), run=run)
                print(f"round {r}: {n} worker(s) {summary.seconds:.1f} s", flush=True)


def cell(rows: list[dict[str, str]]) -> str:
    """The result cell of speed.md's bench-workers row, a pure function of one run's rows."""
    seconds: dict[int, dict[int, float]] = {}
    for r in rows:
        seconds.setdefault(int(r["workers"]), {})[int(r["round"])] = float(r["seconds"])
    many = max(seconds, default=1)
    rounds = sorted(set(seconds.get(1, {})) & set(seconds.get(many, {})))  # both sides timed
    if many == 1 or not rounds:  # no run, or one interrupted before a round was complete
        return "not rerun since the earlier figures, which had no raw timings, were removed"
    one_s, many_s = (median([seconds[n][r] for r in rounds]) for n in (1, many))
    return (f"**{one_s / many_s:.2f}×** ({many_s:.1f} vs {one_s:.1f} s, median of "
            f"{len(rounds)} interleaved rounds, {rows[0]['cores']} cores; run {rows[0]['run']}, "
            f"load {load_range(rows)}; raw rows `{NAME}.csv`)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    add_run_arguments(parser)
    args = parser.parse_args()
    if args.workers < 2 or args.rounds < 1:
        parser.error("need --workers >= 2 and --rounds >= 1")
    time_and_publish(NAME, args, lambda run: measure(args.workers, args.rounds, run), cell)


if __name__ == "__main__":
    main()
