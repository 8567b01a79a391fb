"""Where jobs run: a local 'spawn' process pool (default) or Ray (`pip install robustrl[ray]`).

A backend runs a job and hands every result to `on_result` in the driver as soon as it
arrives (the driver writes the database and, for Ray, the run directory). A job that raises
goes to `on_failure(job, one_line_error)` and the sweep goes on; with `fail_fast` the jobs
already running finish and are stored, the ones not started are cancelled, then the first
error is raised. Either way nothing finished is thrown away.

Ray: tasks are retried on another node when their worker or node dies (system failures,
`RAY_RETRIES` times); an exception raised by the job itself is an application error and is
not retried (it would fail the same way).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any

from robustrl.bench.suite import Job
from robustrl.bench.worker import init_worker, run_job, run_job_shipped, shipped_files
from robustrl.core.errors import MissingExtraError, RobustRLError

OnResult = Callable[[dict[str, Any]], None]
OnFailure = Callable[[Job, str], None]

RAY_RETRIES = 3
"""Times Ray reruns a job whose worker process or node died (each rerun starts from scratch)."""


def default_workers() -> int:
    return os.cpu_count() or 1


def error_line(e: BaseException) -> str:
    """A job's error as one line: a RobustRLError's message, else `Type: first line`."""
    cause = getattr(e, "cause", None)  # Ray wraps the task's exception
    if isinstance(cause, BaseException):
        e = cause
    lines = [s for s in str(e).strip().splitlines() if s.strip()]
    if isinstance(e, RobustRLError):
        return lines[-1] if lines else type(e).__name__
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


def _no_failure(job: Job, error: str) -> None:
    pass


def run_local(jobs: Sequence[Job], workers: int | None, on_result: OnResult,
              on_failure: OnFailure = _no_failure, fail_fast: bool = True) -> None:
    """A process pool with the 'spawn' context. Workers are reused across jobs (each job sets
    its own torch threads), except when a job runs SUMO: then every job gets a fresh
    interpreter, so libsumo's one simulation per process never leaks into the next job.

    `workers=1` runs the jobs one after another in this process instead: no interpreter
    start-up and imports to pay (seconds per worker), and a debugger works.
    """
    if not jobs:
        return
    if workers == 1:
        for job in jobs:
            try:
                result = run_job(job)
            except Exception as e:
                on_failure(job, error_line(e))
                if fail_fast:
                    raise
                continue
            on_result(result)
        return
    workers = max(1, min(workers or default_workers(), len(jobs)))
    fresh = any(job.env.startswith("traffic/") for job in jobs)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=init_worker, max_tasks_per_child=1 if fresh else None)
    futures: dict[Future, Job] = {pool.submit(run_job, job): job for job in jobs}
    error: BaseException | None = None
    try:
        for future in as_completed(futures):
            try:
                result = future.result()
            except CancelledError:
                continue
            except Exception as e:
                on_failure(futures[future], error_line(e))
                if fail_fast and error is None:
                    error = e
                    for f in futures:
                        f.cancel()
                continue
            on_result(result)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    if error is not None:
        raise error


def run_ray(jobs: Sequence[Job], workers: int | None, on_result: OnResult,
            address: str | None = None, on_failure: OnFailure = _no_failure,
            fail_fast: bool = True) -> None:
    """Ray tasks (one CPU each) running `worker.run_job_shipped`: no file system is shared.

    A task gets the job and, if the driver holds a finished run for it, that run's files; it
    trains in a private temporary folder and returns the results *and* the run's files (final
    agent, config, metrics.csv, TensorBoard events, cached adversaries; not the training
    checkpoint), which the driver writes into the run directory before the database. A task
    retried after a node loss therefore restarts training from scratch (seeded, so it gives
    the same agent and rows).

    `address` ("auto" or host:port) joins a running cluster (`ray start --head`). Without it
    Ray starts locally with `workers` CPUs and no dashboard (or uses the one this process has
    already initialized).
    """
    if not jobs:
        return
    with ray_session(address, workers):
        import ray

        _run_ray_tasks(ray, jobs, on_result, on_failure, fail_fast)


@contextmanager
def ray_session(address: str | None, workers: int | None) -> Iterator[None]:
    """Join the cluster at `address`, or start Ray here with `workers` CPUs, unless this
    process has already initialized Ray; shut down what was started here on exit."""
    try:
        import ray
    except ImportError:
        raise MissingExtraError("the ray backend needs Ray: pip install 'robustrl[ray]' "
                            "(or use --backend local)") from None
    if ray.is_initialized():
        yield
        return
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers or default_workers(), include_dashboard=False,
                     log_to_driver=False)
    except ConnectionError as e:
        raise RobustRLError(f"cannot connect to a Ray cluster at '{address}' ({e}); start "
                            "one with `ray start --head`, or drop --address") from None
    try:
        yield
    finally:
        ray.shutdown()


def _run_ray_tasks(ray: Any, jobs: Sequence[Job], on_result: OnResult, on_failure: OnFailure,
                   fail_fast: bool) -> None:
    task = ray.remote(num_cpus=1, max_retries=RAY_RETRIES, retry_exceptions=False)(
        run_job_shipped)
    refs = {task.remote(job, shipped_files(job)): job for job in jobs}
    pending = list(refs)
    error: BaseException | None = None
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                result = ray.get(done[0])
            except ray.exceptions.TaskCancelledError:
                continue
            except Exception as e:
                on_failure(refs[done[0]], error_line(e))
                if fail_fast and error is None:
                    error = _unwrap(e)
                    for ref in pending:
                        ray.cancel(ref)
                continue
            on_result(result)
    except BaseException:
        for ref in pending:
            ray.cancel(ref)
        raise
    if error is not None:
        raise error


def _unwrap(e: Exception) -> BaseException:
    """Ray wraps a task's exception; hand the user's one-line RobustRLError back unwrapped."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, RobustRLError):
        return RobustRLError(str(cause))
    if isinstance(e, RobustRLError):
        return RobustRLError(str(e).strip().splitlines()[-1])
    return e


BACKENDS = ("local", "ray")
