"""One tuning trial: train a run per seed with intermediate evaluations (pruning), score it,
tell the study. Shared by the local runners (`tune`) and the Ray tasks (`tune_ray`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from robustrl.bench.backends import error_line
from robustrl.bench.tune_spec import Param, TuneSpec, overrides
from robustrl.core.errors import RobustRLError


def import_optuna() -> Any:
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


def _sampler(spec: TuneSpec, offset: int) -> Any:
    return import_optuna().samplers.TPESampler(seed=spec.sampler_seed + offset,
                                               n_startup_trials=spec.startup_trials)


def open_study(spec: TuneSpec, storage: Any) -> Any:
    """The spec's study (created or loaded) on `storage`: a URL or an Optuna storage."""
    optuna = import_optuna()
    return optuna.create_study(
        study_name=spec.name, storage=storage, direction="maximize",
        sampler=_sampler(spec, 0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=spec.startup_trials),
        load_if_exists=True)


def ask(study: Any, spec: TuneSpec, offset: int | None = None) -> Any:
    """The study's next trial, sampled with the seed sampler_seed + offset (default: the
    number of trials so far). Every worker, Ray task and resumed run holds a fresh sampler;
    seeded alike they would all draw the same startup configurations."""
    study.sampler = _sampler(spec, len(study.get_trials(deepcopy=False))
                             if offset is None else offset)
    return study.ask()


def trial_counts(study: Any) -> dict[str, int]:
    """How many of the study's trials are in each state."""
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
            raise import_optuna().TrialPruned(f"pruned at step {agent.num_steps}: return "
                                              f"{value:.2f}")


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


def run_trial(study: Any, trial: Any, spec: TuneSpec, params: list[Param], out: Path) -> str:
    """Run an asked trial and tell the study its result; returns its state's name. A trial
    that raises is stored as failed with its one-line error; anything but a RobustRLError (a
    bug, not a configuration the learner refuses) is raised again."""
    optuna = import_optuna()
    try:
        value = _objective(trial, spec, params, out)
    except optuna.TrialPruned:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return "PRUNED"
    except Exception as e:
        trial.set_user_attr("error", error_line(e))
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        if not isinstance(e, RobustRLError):
            raise
        return "FAIL"
    study.tell(trial, value)
    return "COMPLETE"


def too_many_failures(spec: TuneSpec, failed: int) -> None:
    """Stop instead of looping forever when every sampled configuration is refused."""
    if failed >= spec.trials:
        raise RobustRLError(f"{failed} trials of {spec.name} failed (their errors are in the "
                            "study); fix the spec's space or set")
