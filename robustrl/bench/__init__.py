"""Perturbation benchmarks: declarative suites, a resumable SQLite results store, reports.

    >>> from robustrl import bench
    >>> summary = bench.run_suite("experiments/robustness/tiny.toml", workers=2)
    >>> bench.report(summary.db)          # report.md, curves/summary/episodes CSV, <env>.png

A suite (TOML, see `robustrl.bench.suite`) expands to trained runs (agent × env × seed) and
evaluation cells (clean, and each perturbation × strength); finished cells are stored
all-or-nothing, so rerunning an interrupted sweep completes it with the same rows.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from robustrl.bench.reporting import analyse, report
    from robustrl.bench.runner import SweepSummary, run_suite
    from robustrl.bench.store import ResultStore, export_csv
    from robustrl.bench.suite import (
        Cell,
        Job,
        PerturbationEntry,
        Plan,
        SuiteConfig,
        TrainEntry,
        load_suite,
        plan_suite,
    )

_WHERE = {
    "analyse": "reporting", "report": "reporting", "SweepSummary": "runner", "run_suite": "runner",
    "ResultStore": "store", "export_csv": "store", "Cell": "suite", "Job": "suite",
    "PerturbationEntry": "suite", "Plan": "suite", "SuiteConfig": "suite",
    "TrainEntry": "suite", "load_suite": "suite", "plan_suite": "suite",
}
__all__ = [
    "Cell",
    "Job",
    "PerturbationEntry",
    "Plan",
    "ResultStore",
    "SuiteConfig",
    "SweepSummary",
    "TrainEntry",
    "analyse",
    "export_csv",
    "load_suite",
    "plan_suite",
    "report",
    "run_suite",
]


def __getattr__(name: str) -> Any:
    # Lazy, so `robustrl bench --help` (which imports robustrl.cli.bench) stays instant.
    if name in _WHERE:
        return getattr(importlib.import_module(f"robustrl.bench.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'robustrl.bench' has no attribute '{name}'")
