"""`robustrl bench SUITE.toml ...`, `robustrl bench report DB ...`, `robustrl bench export DB`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from robustrl.core.errors import RobustRLError
from robustrl.core.io import check_writable_dir

USAGE = ("robustrl bench SUITE.toml [--backend local|ray] [--workers N] [--db PATH] "
         "[--out DIR] [--address auto] [--fail-fast]\n"
         "       robustrl bench report DB [--out DIR] [--curves]\n"
         "       robustrl bench curves RUN_DIR [RUN_DIR ...] [--out DIR] [--metric NAME]\n"
         "       robustrl bench export DB [--out FILE.csv] [--table episodes|cells|runs]")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.usage = USAGE
    parser.description = (
        "Run a perturbation benchmark suite (agents × envs × perturbations × strengths × "
        "seeds) into a SQLite results database; rerunning the same command after an "
        "interruption finishes only the missing cells. `report DB` writes a Markdown/CSV "
        "table (IQM with stratified-bootstrap CIs, P(A > B), performance profiles) and a "
        "robustness-curve PNG per environment; `curves RUN_DIR...` draws learning curves "
        "across seeds; `export DB` writes CSV.")
    parser.add_argument("target", nargs="+", metavar="SUITE.toml | report DB | export DB",
                        help="a suite file (e.g. experiments/robustness/tiny.toml), or "
                        "`report DB` / `export DB`")
    parser.add_argument("--backend", choices=["local", "ray"], default="local",
                        help="local: process pool (default); ray: Ray tasks "
                        "(pip install 'robustrl[ray]')")
    parser.add_argument("--workers", type=int, default=None,
                        help="parallel jobs (default: all cores; 1 runs the jobs in this "
                        "process, no pool)")
    parser.add_argument("--db", help="results database (default: <out>/results.sqlite)")
    parser.add_argument("--out", help="suite: folder for runs and the database (default: the "
                        "suite's `out`, else runs/bench/<name>); report: output folder; "
                        "export: CSV file")
    parser.add_argument("--address", help="Ray cluster to join, e.g. auto (default: start "
                        "Ray locally)")
    parser.add_argument("--curves", action="store_true",
                        help="report: also draw the runs' learning curves")
    parser.add_argument("--metric", help="curves: metrics.csv column to draw (default: "
                        "episode_return, else eval_return)")
    parser.add_argument("--fail-fast", action="store_true",
                        help="stop the sweep at the first failing job (default: store it as "
                        "failed with its error, run the others; a rerun retries it)")
    parser.add_argument("--table", default="episodes", choices=["episodes", "cells", "runs"],
                        help="export: which table")


def run(args: argparse.Namespace) -> int:
    target = list(args.target)
    action = target[0]
    if action == "curves":
        from robustrl.bench.curves import runs_of_dirs, write_curves

        if len(target) < 2:
            raise RobustRLError("usage: robustrl bench curves RUN_DIR [RUN_DIR ...]")
        for plot in write_curves(runs_of_dirs(target[1:]), args.out or "curves", args.metric):
            print(f"plot:   {plot}")
        return 0
    if action in ("report", "export"):
        if len(target) != 2:
            raise RobustRLError(f"usage: robustrl bench {action} DB")
        db = target[1]
        if action == "report":
            check_writable_dir(args.out or Path(db).parent / "report", "report directory")
            from robustrl.bench.reporting import report

            result = report(db, args.out, curves=args.curves)
            print(result["markdown"])
            print(f"report: {result['out'] / 'report.md'}")
            for plot in result["plots"]:
                print(f"plot:   {plot}")
            _print_failures(db)
            return 0
        from robustrl.bench.store import export_csv

        path = export_csv(db, args.out or Path(db).with_suffix(f".{args.table}.csv"),
                          args.table)
        print(f"wrote {path}")
        return 0
    if len(target) != 1:
        raise RobustRLError(f"bench takes one suite file, got {' '.join(target)}\n{USAGE}")
    from robustrl.bench.runner import run_suite

    if args.out is not None:
        check_writable_dir(args.out, "--out")
    if args.db is not None:
        check_writable_dir(Path(args.db).parent, "--db directory")

    summary = run_suite(action, backend=args.backend, workers=args.workers, db=args.db,
                        out=args.out, address=args.address, fail_fast=args.fail_fast)
    print(f"suite done: {summary.cells} cells ({summary.skipped} already finished, "
          f"{summary.ran} run, {len(summary.failures)} jobs failed) in {summary.seconds:.1f}s "
          f"-> {summary.db}")
    print(f"report: robustrl bench report {summary.db}")
    if summary.failures:
        _print_failures(summary.db)
        return 1
    return 0


def _print_failures(db: str) -> None:
    """The failed jobs stored in `db` (their cells are missing from the report)."""
    from robustrl.bench.store import read_failures

    failures = read_failures(db)
    if not failures:
        return
    print(f"\n{len(failures)} failed job(s), cells missing; rerun the suite to retry only these:")
    for f in failures:
        print(f"  {f['agent']} on {f['env']} seed {f['seed']}: {f['error']}")


def main(argv: list[str] | None = None) -> int:
    """`python -m robustrl.cli.bench ...`: the same as `robustrl bench ...`."""
    parser = argparse.ArgumentParser(prog="robustrl bench")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except RobustRLError as e:
        print(f"robustrl: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("robustrl: interrupted (finished cells are stored; rerun the same command to "
              "finish the suite)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
