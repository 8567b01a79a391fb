"""Where jobs run: a local 'spawn' process pool (default) or Ray (`pip install robustrl[ray]`).

A backend runs `worker.run_job` on each job and hands every result to `on_result` in the
driver as soon as it arrives (the driver writes the database). When one job fails, jobs
already running finish and are stored, the ones not started are cancelled, then the first
error is raised: nothing finished is thrown away.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor, as_completed
from typing import Any

from robustrl.bench.suite import Job
from robustrl.bench.worker import init_worker, run_job
from robustrl.core.errors import MissingExtraError, RobustRLError

OnResult = Callable[[dict[str, Any]], None]


def default_workers() -> int:
    return os.cpu_count() or 1


def run_local(jobs: Sequence[Job], workers: int | None, on_result: OnResult) -> None:
    """A process pool with the 'spawn' context and a fresh interpreter per job, so libsumo (one
    simulation per process) and torch's thread pools never leak between jobs.

    `workers=1` runs the jobs one after another in this process instead: no interpreter
    start-up and imports to pay (seconds per worker), and a debugger works.
    """
    if not jobs:
        return
    if workers == 1:
        for job in jobs:
            on_result(run_job(job))
        return
    workers = max(1, min(workers or default_workers(), len(jobs)))
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=init_worker, max_tasks_per_child=1)
    futures: list[Future] = [pool.submit(run_job, job) for job in jobs]
    error: BaseException | None = None
    try:
        for future in as_completed(futures):
            try:
                result = future.result()
            except CancelledError:
                continue
            except Exception as e:
                if error is None:
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
            address: str | None = None) -> None:
    """Plain Ray tasks (one CPU each) running the same `run_job`; results come back to the
    driver, which writes the same database as the local backend.

    `address` ("auto" or host:port) joins a running cluster (`ray start --head`); the run
    directories must then be on a file system every node sees. Without it Ray starts locally
    with `workers` CPUs and no dashboard.
    """
    try:
        import ray
    except ImportError:
        raise MissingExtraError("the ray backend needs Ray: pip install 'robustrl[ray]' "
                            "(or use --backend local)") from None
    if not jobs:
        return
    started = False
    if not ray.is_initialized():
        try:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=workers or default_workers(), include_dashboard=False,
                         log_to_driver=False)
        except ConnectionError as e:
            raise RobustRLError(f"cannot connect to a Ray cluster at '{address}' ({e}); start "
                                "one with `ray start --head`, or drop --address") from None
        started = True
    task = ray.remote(num_cpus=1, max_retries=0)(run_job)
    pending = [task.remote(job) for job in jobs]
    error: BaseException | None = None
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                result = ray.get(done[0])
            except ray.exceptions.TaskCancelledError:
                continue
            except Exception as e:
                if error is None:
                    error = _unwrap(e)
                    for ref in pending:
                        ray.cancel(ref)
                continue
            on_result(result)
    finally:
        if started:
            ray.shutdown()
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
