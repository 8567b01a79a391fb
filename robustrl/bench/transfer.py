"""Transfer attacks in a suite: `obs-transfer,surrogate=LABEL` computes each run's perturbation
on the run of the [[train]] entry labelled LABEL with the same env and seed (e.g. the
unregularized baseline), so every method is attacked through the same surrogate.

The plan links each job to its surrogate runs (and folds the surrogate's run id into the cell
id, so retraining the surrogate re-evaluates the cell); the worker trains or loads the
surrogate under a per-run lock, so two workers never train the same run directory at once.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from robustrl.core.errors import RobustRLError
from robustrl.perturb import parse


def _label(spec: str) -> str | None:
    """The surrogate of an obs-transfer spec ("" when it names none), None for other kinds."""
    parsed = parse(spec)
    return parsed.get("surrogate") or "" if parsed.kind == "obs-transfer" else None


def link_surrogates(jobs: list[Any], suite_name: str) -> None:
    """Point every job with obs-transfer cells at its surrogate jobs (`job.surrogates`)."""
    by_key = {(j.label, j.env, j.seed): j for j in jobs}
    for job in jobs:
        for i, cell in enumerate(job.cells):
            if cell.spec == "none" or (label := _label(cell.spec)) is None:
                continue
            if not label:
                raise RobustRLError(f"suite {suite_name}: {cell.spec}: name the surrogate, "
                                    "surrogate=LABEL (a [[train]] label of this suite, e.g. the "
                                    "plain baseline) or surrogate=RUN_DIR")
            other = by_key.get((label, job.env, job.seed))
            if other is None and (Path(label) / "agent.pt").is_file():
                continue  # a finished run directory: eval_env loads it
            if other is None:
                labels = sorted({j.label for j in jobs if j.env == job.env})
                raise RobustRLError(
                    f"suite {suite_name}: {cell.spec}: surrogate={label} names no [[train]] "
                    f"label trained on {job.env} with seed {job.seed} (labels there: "
                    f"{', '.join(labels)}) and no finished run directory")
            job.surrogates[label] = dataclasses.replace(other, cells=[], surrogates={})
            cell_id = hashlib.sha256(f"{cell.id}:{other.run_id}".encode()).hexdigest()[:16]
            job.cells[i] = dataclasses.replace(cell, id=cell_id)


@contextmanager
def run_lock(run_dir: str) -> Iterator[None]:
    """Exclusive lock on a run directory while it is trained or loaded (a file in the suite's
    `<out>/locks/`, next to `<out>/runs/`)."""
    run = Path(run_dir)
    path = run.parent.parent / "locks" / f"{run.name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def surrogate_agent(job: Any, spec: str, trained_agent: Callable[[Any], Any]) -> Any:
    """The trained surrogate agent of an obs-transfer cell naming a train label, else None;
    `trained_agent` is the worker's (reuse, resume or train a job's run)."""
    other = job.surrogates.get(_label(spec))
    if other is None:  # not a transfer attack, or a run directory eval_env loads
        return None
    with run_lock(other.run_dir):
        return trained_agent(other)
