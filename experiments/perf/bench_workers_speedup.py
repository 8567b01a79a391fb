"""Parallel speedup of the local bench backend: the same CPU-bound suite with N workers vs 1.

Each round runs `experiments/robustness/cpu_bound.toml` (four equal PPO trainings + evaluation)
into a fresh folder, once with 1 worker and once with `--workers` workers, alternating so
that drifting machine load hits both alike; the ratio of median wall times is reported.
Meaningful only on an otherwise idle machine (other jobs take the cores the pool needs).

    python experiments/perf/bench_workers_speedup.py --workers 2 --rounds 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from robustrl.bench import run_suite

SUITE = Path(__file__).resolve().parents[1] / "robustness" / "cpu_bound.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    times: dict[int, list[float]] = {1: [], args.workers: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for workers in (1, args.workers):
                summary = run_suite(SUITE, workers=workers, out=Path(tmp) / f"r{r}w{workers}")
                times[workers].append(summary.seconds)
                print(f"round {r}: {workers} worker(s) {summary.seconds:.1f} s", flush=True)
    one, many = statistics.median(times[1]), statistics.median(times[args.workers])
    print(f"{args.workers} workers vs 1: {one / many:.2f}x speedup ({many:.1f} s vs {one:.1f} s, "
          f"median of {args.rounds} rounds, {os.cpu_count()} cores, "
          f"load average at the end {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
