"""Run a suite: validate, skip finished cells, run the rest on a backend, store each job."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustrl.bench.backends import BACKENDS, run_local, run_ray
from robustrl.bench.store import ResultStore
from robustrl.bench.suite import Job, Plan, SuiteConfig, load_suite, plan_suite
from robustrl.bench.worker import write_run_files
from robustrl.core.errors import RobustRLError
from robustrl.core.progress import progress


@dataclass
class SweepSummary:
    db: Path
    out: Path
    cells: int
    """Cells in the suite."""
    skipped: int
    """Cells found finished in the database (not rerun)."""
    ran: int
    seconds: float
    failures: list[dict[str, Any]] = field(default_factory=list)
    """Jobs that failed in this sweep (also in the database's `failures` table): run, agent,
    env, seed, error (one line). Their cells are unfinished: a rerun retries them."""


def pending_jobs(plan: Plan, finished: set[str]) -> list:
    """The plan's jobs reduced to their unfinished cells (jobs with none left dropped)."""
    jobs = []
    for job in plan.jobs:
        cells = [c for c in job.cells if c.id not in finished]
        if cells:
            jobs.append(dataclasses.replace(job, cells=cells))
    return jobs


def run_suite(suite: str | Path | SuiteConfig, backend: str = "local",
              workers: int | None = None, db: str | Path | None = None,
              out: str | Path | None = None, address: str | None = None,
              fail_fast: bool = False) -> SweepSummary:
    """Run every unfinished cell of `suite`; rerunning after an interruption completes it.

    Results go to `db` (default `<out>/results.sqlite`); run directories to `<out>/runs/`.
    A job that raises is stored as failed (one-line error) and the others go on; a rerun
    retries the failed and unfinished jobs only. `fail_fast` stops at the first failure
    instead (running jobs finish and are stored, then its error is raised).
    """
    if backend not in BACKENDS:
        raise RobustRLError(f"unknown backend '{backend}'; choose {' or '.join(BACKENDS)}")
    if workers is not None and workers < 1:
        raise RobustRLError(f"--workers must be >= 1, got {workers}")
    if address and backend != "ray":
        raise RobustRLError("--address is for --backend ray")
    config = suite if isinstance(suite, SuiteConfig) else load_suite(suite)
    plan = plan_suite(config, out)
    db_path = Path(db) if db is not None else plan.out / "results.sqlite"
    start = time.perf_counter()
    with ResultStore(db_path, config.name, plan.suite_hash) as store:
        store.check_configs(plan.jobs)  # one configuration per agent × env × seed
        finished = store.finished_cells()
        jobs = pending_jobs(plan, finished)
        todo = sum(len(j.cells) for j in jobs)
        bar = progress(plan.n_cells, desc=f"bench {config.name}", initial=plan.n_cells - todo,
                       unit="cell")

        failures: list[dict[str, Any]] = []

        def on_result(result: dict[str, Any]) -> None:
            files = result.pop("files", None)
            if files is not None:  # shipped back by a Ray task: the run dir, then the rows
                write_run_files(result["run_dir"], files)
            store.write_job(result)
            bar.update(len(result["cells"]))

        def on_failure(job: Job, error: str) -> None:
            store.write_failure(job, error)
            failures.append({"run": job.run_id, "agent": job.label, "env": job.env,
                             "seed": job.seed, "error": error})
            bar.write(f"failed: {job.label} on {job.env} seed {job.seed}: {error}")

        try:
            if backend == "ray":
                run_ray(jobs, workers, on_result, address=address, on_failure=on_failure,
                        fail_fast=fail_fast)
            else:
                run_local(jobs, workers, on_result, on_failure=on_failure, fail_fast=fail_fast)
        finally:
            bar.close()
    failed = sum(len(j.cells) for j in jobs if j.run_id in {f["run"] for f in failures})
    return SweepSummary(db=db_path, out=plan.out, cells=plan.n_cells,
                        skipped=plan.n_cells - todo, ran=todo - failed,
                        seconds=time.perf_counter() - start, failures=failures)
