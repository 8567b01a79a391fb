"""`robustrl tune SPEC.toml`: equal-budget hyperparameter search with Optuna.

TPE sampler, median pruner on clean evaluation returns reported every `eval_every` training
steps, the study in SQLite (`<out>/study.sqlite`), so a killed tuning run resumes where it
stopped: its interrupted trial is marked failed (it counts toward nothing) and the remaining
trials run. Trials run in this process (`workers=1`), in `workers` spawned processes that
share the study, each trial training one run per seed into `<out>/trials/<number>/seed<k>/`,
or as Ray tasks (`tune_ray`: no shared file system, the runs stay on the nodes).

A spec with variants (an equal-budget comparison) runs one study per variant in
`<out>/<label>/`, one after the other. When `trials` trials are finished a study writes
`<out>/best.toml` (a ready `agents/<algo>.toml` section), `<out>/best_set.txt` (the `--set`
line) and `<out>/trials.csv`.
"""

from __future__ import annotations

import csv
import fcntl
import io
import multiprocessing
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustrl.bench.tune_spec import TuneSpec, agents_toml, load_tune_spec, set_line
from robustrl.bench.tune_trial import (
    ask,
    import_optuna,
    open_study,
    run_trial,
    too_many_failures,
    trial_counts,
)
from robustrl.core.errors import RobustRLError
from robustrl.core.io import atomic_write_text


@dataclass
class TuneSummary:
    out: Path
    finished: int
    """Complete + pruned trials in the study."""
    failed: int
    """Trials that raised or were interrupted (not counted toward `trials`)."""
    best_value: float
    best_params: dict[str, Any]
    set_line: str
    agents_toml: str


@contextmanager
def _lock(path: Path, blocking: bool) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            raise RobustRLError(f"another `robustrl tune` is running on {path.parent}; wait for "
                                "it or give this spec another out") from None
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _work(spec_path: str, label: str, out: str) -> None:
    """One trial runner: claim a trial while fewer than `trials` are finished or running,
    run it; the claim is under a file lock, so workers never overshoot."""
    from robustrl.bench.worker import init_worker

    if multiprocessing.parent_process() is not None:
        init_worker()
    [(spec, params)] = [(s, p) for name, s, p in load_tune_spec(spec_path) if name == label]
    out_dir = Path(out)
    study = open_study(spec, f"sqlite:///{out_dir / 'study.sqlite'}")
    failed = 0
    while True:
        with _lock(out_dir / "claim.lock", blocking=True):
            c = trial_counts(study)
            if c["COMPLETE"] + c["PRUNED"] + c["RUNNING"] >= spec.trials:
                return
            trial = ask(study, spec)  # RUNNING before the next worker counts
        failed += run_trial(study, trial, spec, params, out_dir) == "FAIL"
        too_many_failures(spec, failed)


def run_tune(spec_path: str | Path, workers: int = 1, out: str | Path | None = None,
             backend: str = "local", address: str | None = None) -> list[TuneSummary]:
    """Run (or resume) the study (or each variant's) of `spec_path` until `trials` trials
    are finished; one summary per study. `backend="ray"` runs the trials as Ray tasks
    (`robustrl.bench.tune_ray`), `workers` at a time, on the cluster at `address`."""
    import_optuna()
    studies = load_tune_spec(spec_path)
    if workers < 1:
        raise RobustRLError(f"--workers must be >= 1, got {workers}")
    if backend not in ("local", "ray"):
        raise RobustRLError(f"unknown backend '{backend}'; choose local or ray")
    if address and backend != "ray":
        raise RobustRLError("--address is for --backend ray")
    first = studies[0][1]
    base = Path(out or first.out or f"runs/tune/{first.name.removesuffix('-' + studies[0][0])}")
    return [_run_study(str(spec_path), label, spec, workers, (base / label).resolve(),
                       backend, address) for label, spec, _ in studies]


def _run_study(spec_path: str, label: str, spec: TuneSpec, workers: int, out_dir: Path,
               backend: str = "local", address: str | None = None) -> TuneSummary:
    optuna = import_optuna()
    out_dir.mkdir(parents=True, exist_ok=True)
    with _lock(out_dir / "study.lock", blocking=False):
        study = open_study(spec, f"sqlite:///{out_dir / 'study.sqlite'}")
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            # left RUNNING by a killed tuning run (we hold the lock): it will never finish
            study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        if backend == "ray":
            from robustrl.bench.tune_ray import run_trials_on_ray

            run_trials_on_ray(spec_path, label, spec, study, out_dir, workers, address)
        elif workers == 1:
            _work(spec_path, label, str(out_dir))
        else:
            ctx = multiprocessing.get_context("spawn")
            procs = [ctx.Process(target=_work, args=(spec_path, label, str(out_dir)))
                     for _ in range(workers)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            if any(p.exitcode for p in procs):
                raise RobustRLError(f"a tuning worker died (exit codes "
                                    f"{[p.exitcode for p in procs]}); rerun to resume")
        return _finish(spec, study, out_dir)


def _finish(spec: TuneSpec, study: Any, out: Path) -> TuneSummary:
    c = trial_counts(study)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not done:
        raise RobustRLError(f"no trial of {spec.name} completed ({c['PRUNED']} pruned, "
                            f"{c['FAIL']} failed); see {out / 'trials.csv'}")
    best = study.best_trial
    comment = (f"robustrl tune {spec.name}: best of {c['COMPLETE'] + c['PRUNED']} trials "
               f"(trial {best.number}, {spec.objective} objective {best.value:.4g}, "
               f"{spec.steps} steps x {len(spec.seeds)} seed(s))")
    section, line = agents_toml(spec, best.params, comment), set_line(spec, best.params)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    keys = sorted(spec.space)
    writer.writerow(["number", "state", "value", *keys, "error"])
    for t in study.trials:
        writer.writerow([t.number, t.state.name, "" if t.value is None else t.value,
                         *[t.params.get(k, "") for k in keys], t.user_attrs.get("error", "")])
    atomic_write_text(out / "trials.csv", buffer.getvalue())
    atomic_write_text(out / "best.toml", section)
    atomic_write_text(out / "best_set.txt", line + "\n")
    return TuneSummary(out=out, finished=c["COMPLETE"] + c["PRUNED"], failed=c["FAIL"],
                       best_value=float(best.value), best_params=dict(best.params),
                       set_line=line, agents_toml=section)
