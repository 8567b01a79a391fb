"""Tuning specs (`robustrl tune SPEC.toml`): the TOML schema, its validation, the search
space, and the best configuration written as an `agents/<algo>.toml` section and a `--set` line.

    name = "cartpole_ppo"
    agent = "ppo"
    env = "gym/CartPole-v1"
    steps = 5000                  # training budget of each trial, per seed
    seeds = [0]                   # each trial trains one run per seed; value = mean over seeds
    trials = 20                   # finished (complete or pruned) trials to reach
    set = { n_envs = 2 }          # fixed overrides (`robustrl train --set` keys)
    objective = "clean"           # or "robust": IQM of episode returns under `perturbations`
    perturbations = ["obs-gaussian:0.1", "act-replace:0.1"]
    episodes = 5                  # evaluation episodes (each intermediate report, the end)
    eval_every = 1000             # steps between intermediate evaluations (pruner input)

    [space]                       # agent hyperparameters (`--set` keys) to search
    lr = { low = 1e-4, high = 1e-3, log = true }    # float (log-uniform)
    n_epochs = { low = 2, high = 10 }               # int (both bounds integers)
    ent_coef = { choices = [0.0, 0.01] }            # categorical
    "robust.lam" = { low = 0.01, high = 1.0, log = true }

An equal-budget comparison lists variants; each is its own study (`<out>/<label>/`) with the
same steps, seeds, trials, objective and evaluation, its `set` and `space` added to the
shared ones:

    [variants.ppo]
    space = { ent_coef = { low = 1e-5, high = 1e-2, log = true } }
    [variants.ernie]
    set = { "robust.method" = "ernie" }
    space = { "robust.lam" = { low = 1e-3, high = 1.0, log = true } }
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomli_w

from robustrl.core.config import from_dict, read_toml
from robustrl.core.errors import RobustRLError

SECTIONS_NOT_AGENT = ("run.", "env.", "reward.", "heron.")
"""`--set` prefixes that are not agent hyperparameters (they stay out of agents/<algo>.toml)."""


@dataclass
class TuneSpec:
    agent: str
    """Algorithm to tune (`ppo`, `sac`, ...)."""
    env: str
    """Environment id (`robustrl envs`)."""
    steps: int
    """Training budget of one trial, in env steps, per seed (the same for every trial)."""
    trials: int
    """Trials to finish (complete or pruned); a resumed study stops at this count."""
    space: dict[str, Any] = field(default_factory=dict)
    """Search space: `--set` key -> {low, high[, log, step]} or {choices = [...]}."""
    variants: dict[str, Any] = field(default_factory=dict)
    """Equal-budget comparison: label -> {set = {...}, space = {...}} (see the module doc)."""
    name: str = ""
    """Study name (default: the spec file's stem)."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Training seeds of each trial; its value is the mean over them."""
    set: dict[str, Any] = field(default_factory=dict)
    """Fixed overrides (`robustrl train --set` keys) applied to every trial."""
    objective: Literal["clean", "robust"] = "clean"
    """clean: mean return of `episodes` clean episodes; robust: interquartile mean (IQM) of
    the episode returns under every spec in `perturbations` ("none" adds clean episodes)."""
    perturbations: list[str] = field(default_factory=list)
    """Full perturbation specs with strengths (`obs-gaussian:0.1`) for objective = robust."""
    episodes: int = 5
    """Evaluation episodes per intermediate report, and per perturbation at the end."""
    eval_every: int = 0
    """Env steps between intermediate (clean) evaluations reported to the pruner; 0: steps/4."""
    eval_seed: int = 10_000
    """Seed of the first evaluation episode (the same initial states for every trial)."""
    sampler_seed: int = 0
    """Seed of the TPE sampler (a trial samples with sampler_seed + the trials before it)."""
    startup_trials: int = 5
    """Trials the median pruner lets finish before it prunes (and TPE samples at random)."""
    out: str | None = None
    """Folder of the study database, trial runs and outputs (default runs/tune/<name>)."""


@dataclass(frozen=True)
class Param:
    key: str
    kind: Literal["float", "int", "categorical"]
    low: Any = None
    high: Any = None
    log: bool = False
    step: Any = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, self.low, self.high, log=self.log,
                                     step=self.step or 1)
        return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)

    def example(self) -> Any:
        return self.choices[0] if self.kind == "categorical" else self.low


def load_tune_spec(path: str | Path) -> list[tuple[str, TuneSpec, list[Param]]]:
    """Read and check a tuning spec: (label, spec, search space) per study ("" when the spec
    has no variants); every problem is one `RobustRLError` line."""
    path = Path(path)
    data = read_toml(path, "tuning spec")
    try:
        spec = from_dict(TuneSpec, data)
    except TypeError as e:
        missing = str(e).split("argument", 1)[-1].lstrip("s: ").replace("'", "")
        raise RobustRLError(f"tuning spec {path}: missing required key(s) {missing} (see "
                            "robustrl/bench/tune_spec.py for the schema)") from None
    except RobustRLError as e:
        raise RobustRLError(f"tuning spec {path}: {e}") from None
    spec.name = spec.name or path.stem
    studies = [("", spec)]
    if spec.variants:
        studies = [(label, _variant(spec, label, v)) for label, v in spec.variants.items()]
    try:
        return [(label, s, _check(s)) for label, s in studies]
    except RobustRLError as e:
        raise RobustRLError(f"tuning spec {path}: {e}") from None


def _variant(spec: TuneSpec, label: str, variant: Any) -> TuneSpec:
    if not isinstance(variant, dict) or set(variant) - {"set", "space"}:
        raise RobustRLError(f"variants.{label} may hold only set = {{...}} and space = {{...}}")
    return dataclasses.replace(spec, name=f"{spec.name}-{label}", variants={},
                               set={**spec.set, **variant.get("set", {})},
                               space={**spec.space, **variant.get("space", {})})


def _param(key: str, value: Any) -> Param:
    if not isinstance(value, dict):
        raise RobustRLError(f"space.{key} must be a table: {{low = .., high = .., log = true}} "
                            "or {choices = [..]}")
    unknown = set(value) - {"low", "high", "log", "step", "choices"}
    if unknown:
        raise RobustRLError(f"space.{key}: unknown key(s) {', '.join(sorted(unknown))}; use "
                            "low, high, log, step or choices")
    if "choices" in value:
        if set(value) != {"choices"} or not isinstance(value["choices"], list) \
                or not value["choices"]:
            raise RobustRLError(f"space.{key}: choices must be a non-empty list, alone")
        return Param(key, "categorical", choices=tuple(value["choices"]))
    if "low" not in value or "high" not in value:
        raise RobustRLError(f"space.{key} needs both low and high (or choices)")
    low, high, log = value["low"], value["high"], value.get("log", False)
    numbers = (int, float)
    if not all(isinstance(x, numbers) and not isinstance(x, bool) for x in (low, high)) \
            or not low < high:
        raise RobustRLError(f"space.{key}: low and high must be numbers with low < high, got "
                            f"{low!r} and {high!r}")
    if not isinstance(log, bool) or (log and low <= 0):
        raise RobustRLError(f"space.{key}: log must be true/false, and log needs low > 0")
    kind = "int" if isinstance(low, int) and isinstance(high, int) else "float"
    if kind == "float":
        low, high = float(low), float(high)
    return Param(key, kind, low, high, log, value.get("step"))


def _check(spec: TuneSpec) -> list[Param]:
    from robustrl.perturb import parse
    from robustrl.train import build_run

    if spec.steps < 1 or spec.trials < 1 or spec.episodes < 1:
        raise RobustRLError("steps, trials and episodes must be >= 1")
    if not spec.seeds or len(set(spec.seeds)) != len(spec.seeds):
        raise RobustRLError("seeds must be a non-empty list of distinct integers")
    if not 0 <= spec.eval_every <= spec.steps:
        raise RobustRLError(f"eval_every must be between 0 and steps ({spec.steps})")
    if not spec.space:
        raise RobustRLError("[space] needs at least one hyperparameter to search")
    params = [_param(k, v) for k, v in spec.space.items()]
    clash = set(spec.space) & set(spec.set)
    if clash:
        raise RobustRLError(f"{', '.join(sorted(clash))} is both searched and fixed in set")
    if spec.objective == "robust" and not spec.perturbations:
        raise RobustRLError('objective = "robust" needs perturbations = ["obs-gaussian:0.1", '
                            '...]')
    for text in spec.perturbations:
        if text != "none":
            parsed = parse(text)
            if parsed.kind == "adversary-agents" and parsed.get("policy") == "adversary":
                raise RobustRLError(f"perturbation {text}: trained adversaries are a bench "
                                    "feature; tune on the other kinds")
    # Unknown keys or values the learner refuses: one line now, not after the first trial.
    build_run(spec.agent, spec.env, spec.steps, spec.seeds[0],
              {**spec.set, **{p.key: p.example() for p in params}})
    return params


def overrides(spec: TuneSpec, values: dict[str, Any]) -> dict[str, Any]:
    """The `--set` overrides of a trial: the fixed ones, then its sampled values."""
    return {**spec.set, **values}


def set_line(spec: TuneSpec, values: dict[str, Any]) -> str:
    """`--set k=v ...` reproducing a configuration on the command line."""
    from robustrl.core.config import parse_value

    def text(v: Any) -> str:
        plain = str(v).lower() if isinstance(v, bool) else str(v).replace(" ", "")
        return plain if parse_value(plain) == v else repr(v)  # quote only where needed

    return " ".join(f"--set {k}={text(v)}" for k, v in overrides(spec, values).items())


def agents_toml(spec: TuneSpec, values: dict[str, Any], comment: str) -> str:
    """An `agents/<algo>.toml` section for the spec's env with the best agent settings (run.,
    env., reward., heron. keys are not agent settings: they stay on the --set line)."""
    section: dict[str, Any] = {}
    for key, value in overrides(spec, values).items():
        if key.startswith(SECTIONS_NOT_AGENT):
            continue
        key = key.removeprefix("agent.")
        *parents, leaf = key.split(".")
        node = section
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return f"# {comment}\n" + tomli_w.dumps({spec.env: section})
