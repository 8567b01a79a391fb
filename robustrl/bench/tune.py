"""`robustrl tune SPEC.toml`: equal-budget hyperparameter search with Optuna.

TPE sampler, median pruner on clean evaluation returns reported every `eval_every` training
steps, the study in SQLite (`<out>/study.sqlite`), so a killed tuning run resumes where it
stopped: its interrupted trial is marked failed (it counts toward nothing) and the remaining
trials run. Trials run in this process (`workers=1`) or in `workers` spawned processes that
share the study; each trial trains one run per seed into `<out>/trials/<number>/seed<k>/`.

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

import numpy as np

from robustrl.bench.backends import error_line
from robustrl.bench.tune_spec import (
    Param,
    TuneSpec,
    agents_toml,
    load_tune_spec,
    overrides,
    set_line,
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


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise RobustRLError("robustrl tune needs Optuna: pip install 'robustrl[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def iqm(values: list[float]) -> float:
    """Interquartile mean: the mean of the middle 50% (rliable's aggregate)."""
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    cut = n // 4
    return float(x[cut:n - cut].mean()) if n - 2 * cut > 0 else float(x.mean())


def _open_study(spec: TuneSpec, out: Path) -> Any:
    optuna = _optuna()
    return optuna.create_study(
        study_name=spec.name, storage=f"sqlite:///{out / 'study.sqlite'}", direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=spec.sampler_seed,
                                           n_startup_trials=spec.startup_trials),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=spec.startup_trials),
        load_if_exists=True)


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


def _counts(study: Any) -> dict[str, int]:
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    return {s: states.count(s) for s in ("COMPLETE", "PRUNED", "RUNNING", "FAIL", "WAITING")}


class _Pruning:
    """Training hook: every `eval_every` steps a clean evaluation, reported to the pruner."""

    def __init__(self, trial: Any, spec: TuneSpec, offset: int):
        self.trial, self.spec, self.offset = trial, spec, offset
        self.every = spec.eval_every or max(1, spec.steps // 4)
        self.next = self.every

    def __call__(self, agent: Any) -> None:
        from robustrl.train import eval_env, evaluate

        if agent.num_steps < self.next or agent.num_steps >= self.spec.steps:
            return
        self.next = (agent.num_steps // self.every + 1) * self.every
        value = evaluate(agent, self.spec.episodes, seed=self.spec.eval_seed,
                         env=eval_env(agent))["return_mean"]
        self.trial.report(value, self.offset + agent.num_steps)
        if self.trial.should_prune():
            raise _optuna().TrialPruned(f"pruned at step {agent.num_steps}: return {value:.2f}")


def _score(agent: Any, spec: TuneSpec) -> float:
    """The objective of one trained run (see TuneSpec.objective)."""
    from robustrl.train import eval_env, evaluate

    if spec.objective == "clean":
        return float(evaluate(agent, spec.episodes, seed=spec.eval_seed)["return_mean"])
    returns: list[float] = []
    for text in spec.perturbations:
        perturb = [] if text == "none" else [text]
        env = eval_env(agent, perturb, seed=spec.eval_seed)
        returns += evaluate(agent, spec.episodes, seed=spec.eval_seed, env=env)["returns"]
    return iqm(returns)


def _objective(trial: Any, spec: TuneSpec, params: list[Param], out: Path) -> float:
    from robustrl.train import build_run, train

    values = {p.key: p.suggest(trial) for p in params}
    scores = []
    for i, seed in enumerate(spec.seeds):
        run = build_run(spec.agent, spec.env, spec.steps, seed, overrides(spec, values))
        run_dir = out / "trials" / f"{trial.number:04d}" / f"seed{seed}"
        agent = train(run, run_dir, show_progress=False,
                      on_log=_Pruning(trial, spec, offset=i * spec.steps))
        agent.close()
        scores.append(_score(agent, spec))
        trial.set_user_attr(f"seed{seed}", scores[-1])
    return float(np.mean(scores))


def _work(spec_path: str, label: str, out: str) -> None:
    """One trial runner: claim a trial while fewer than `trials` are finished or running,
    run it, tell the study; the claim is under a file lock, so workers never overshoot."""
    from robustrl.bench.worker import init_worker

    if multiprocessing.parent_process() is not None:
        init_worker()
    optuna = _optuna()
    [(spec, params)] = [(s, p) for name, s, p in load_tune_spec(spec_path) if name == label]
    out_dir = Path(out)
    study = _open_study(spec, out_dir)
    failed = 0
    while True:
        with _lock(out_dir / "claim.lock", blocking=True):
            c = _counts(study)
            if c["COMPLETE"] + c["PRUNED"] + c["RUNNING"] >= spec.trials:
                return
            trial = study.ask()
        try:
            value = _objective(trial, spec, params, out_dir)
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        except Exception as e:  # stored as failed with its line; a bug still surfaces
            trial.set_user_attr("error", error_line(e))
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            failed += 1
            if not isinstance(e, RobustRLError):
                raise
            if failed >= spec.trials:  # e.g. every sampled value refused: do not loop forever
                raise RobustRLError(f"{failed} trials of {spec.name} failed; the last: "
                                    f"{error_line(e)}") from None
        else:
            study.tell(trial, value)


def run_tune(spec_path: str | Path, workers: int = 1, out: str | Path | None = None
             ) -> list[TuneSummary]:
    """Run (or resume) the study (or each variant's) of `spec_path` until `trials` trials
    are finished; one summary per study."""
    _optuna()
    studies = load_tune_spec(spec_path)
    if workers < 1:
        raise RobustRLError(f"--workers must be >= 1, got {workers}")
    first = studies[0][1]
    base = Path(out or first.out or f"runs/tune/{first.name.removesuffix('-' + studies[0][0])}")
    return [_run_study(str(spec_path), label, spec, workers, (base / label).resolve())
            for label, spec, _ in studies]


def _run_study(spec_path: str, label: str, spec: TuneSpec, workers: int, out_dir: Path
               ) -> TuneSummary:
    optuna = _optuna()
    out_dir.mkdir(parents=True, exist_ok=True)
    with _lock(out_dir / "study.lock", blocking=False):
        study = _open_study(spec, out_dir)
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            # left RUNNING by a killed tuning run (we hold the lock): it will never finish
            study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        if workers == 1:
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
    c = _counts(study)
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
