"""Benchmark suites: the TOML schema, its validation, and the plan of jobs and cells it expands to.

A suite is agents × envs × perturbations × strengths × seeds. It expands to *jobs* (one trained
run: agent, env, training seed) and *cells* (one evaluation of a trained run: clean, or one
perturbation at one strength, `episodes` episodes). A cell is the unit the results database
stores all-or-nothing; its id is a hash of everything that determines its rows, so a rerun
recognises finished cells exactly.

    name = "tiny"
    seeds = [0, 1]
    episodes = 3

    [[train]]                       # agents × envs, trained `steps` steps with `set` overrides
    agents = ["ppo"]
    envs = ["gym/CartPole-v1"]
    steps = 512
    set = { n_envs = 2, "run.tensorboard" = false }   # or: set.env = { max_episode_steps = 50 }
    # score_agents = ["agent_0", "agent_1"]   # multi-agent only: whose returns are scored

    [[perturbations]]               # kind (plus options, no strength) × strengths
    spec = "obs-gaussian"
    strengths = [0.1, 0.3]
    envs = ["gym/*"]                # optional: env-id globs it applies to (default: all)

A multi-agent perturbation `adversary-agents,policy=adversary[,adv_steps=N]` has the worker
train a PPO adversary for the replaced agent against each trained run (cached in its run
directory; robustrl/bench/adversary.py says what it optimizes).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robustrl.core.config import from_dict, read_toml, to_dict
from robustrl.core.errors import RobustRLError

CLEAN = "none"
"""The `perturbation` / `spec` of a clean (unperturbed) evaluation cell."""
RANDOM = "random"
"""The label of the random pseudo-agent's rows (`random_baseline`)."""


@dataclass
class TrainEntry:
    agents: list[str]
    """Algorithms to train (`sac`, `ppo`, ...); each is trained on each of `envs`."""
    envs: list[str]
    """Environment ids (`robustrl envs` lists them)."""
    steps: int
    """Training budget in environment steps."""
    set: dict[str, Any] = field(default_factory=dict)
    """Overrides with `robustrl train --set` keys: `lr`, `agent.x`, `run.x`, `env.x`,
    `reward.x`, `heron.x`."""
    label: str = ""
    """Name of these runs in the results and reports (default: the agent name); tells apart
    entries that train the same agent differently, e.g. "ppo+heron"."""
    score_agents: list[str] = field(default_factory=list)
    """Multi-agent envs: the agents whose returns are summed into an episode's score, and
    whose policy the Lipschitz estimate covers (default: every agent, the team return). Name
    one team in a competitive env (mpe/simple_adversary: ["agent_0", "agent_1"]); perturb
    that team with `agents=` in the perturbation spec. Agents replaced by adversary-agents
    still count (with a shared team reward, leaving them out would change the score's scale
    between clean and perturbed cells)."""


@dataclass
class PerturbationEntry:
    spec: str
    """A perturbation kind, optionally with options but no strength (`obs-pgd,steps=5`)."""
    strengths: list[float]
    """Strengths to evaluate; with the clean point they make the robustness curve."""
    envs: list[str] = field(default_factory=lambda: ["*"])
    """Env-id globs this perturbation is evaluated on (default: every env of the suite)."""


@dataclass
class SuiteConfig:
    name: str
    """Suite name; stored with every row so databases of different suites never mix."""
    train: list[TrainEntry]
    perturbations: list[PerturbationEntry] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])
    """Training seeds: one trained run per agent × env × seed."""
    episodes: int = 10
    """Evaluation episodes per cell."""
    eval_seed: int = 10_000
    """Seed of the first evaluation episode (episode i uses eval_seed + i), the same in every
    cell, so clean and perturbed returns are compared on the same initial states."""
    lipschitz_eps: float = 0.05
    """Radius (normalized units, l-inf) of the empirical local Lipschitz estimate."""
    lipschitz_obs: int = 256
    """At most this many clean-rollout observations feed the Lipschitz estimate."""
    random_baseline: bool = False
    """Also evaluate a uniformly random policy on every env × cell × seed (rows labelled
    "random"): the reference of sign-aware normalized scores in `bench report`. Turning it on
    for a finished suite runs only the random cells."""
    controllers: list[str] = field(default_factory=list)
    """Traffic envs: also evaluate these hand-designed signal controllers ("fixed-time",
    "max-pressure"; robustrl.envs.traffic_baselines) on every traffic env × cell, rows
    labelled by name. They read the simulation, not the observation, so observation
    perturbations leave them as they are clean; they have no training seed, so they run once,
    under the suite's first seed. Turning them on for a finished suite runs only their cells."""
    out: str | None = None
    """Folder for run directories and the default database, relative to the working
    directory (default runs/bench/<name>)."""


@dataclass(frozen=True)
class Cell:
    """One evaluation of a trained run; `id` hashes everything that determines its rows."""

    id: str
    perturbation: str
    """The perturbation entry's spec without strength (`obs-gaussian`), or "none"."""
    spec: str
    """The full canonical spec evaluated (`obs-gaussian:0.1`), or "none"."""
    strength: float | None


@dataclass
class Job:
    """One trained run (agent × env × seed) and the cells still to evaluate on it."""

    run_id: str
    agent: str
    env: str
    label: str
    """The agent's name in results and reports (`TrainEntry.label` or the agent)."""
    seed: int
    run: Any
    """The resolved `robustrl.train.Run` config."""
    run_dir: str
    cells: list[Cell]
    episodes: int
    eval_seed: int
    lipschitz_eps: float
    lipschitz_obs: int
    score_agents: list[str] = field(default_factory=list)
    """`TrainEntry.score_agents` (empty: every agent)."""
    surrogates: dict[str, Any] = field(default_factory=dict)
    """obs-transfer: surrogate label -> that run's Job (robustrl.bench.transfer)."""
    reference: str = ""
    """A reference policy evaluated instead of a trained run: "random" or a traffic
    controller's name (`random_baseline`, `controllers`); empty for a learner."""


@dataclass
class Plan:
    suite: SuiteConfig
    suite_hash: str
    out: Path
    jobs: list[Job]

    @property
    def n_cells(self) -> int:
        return sum(len(j.cells) for j in self.jobs)


def digest(data: Any, n: int = 16) -> str:
    """Stable short hash of JSON-able data (key order does not matter)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def load_suite(path: str | Path) -> SuiteConfig:
    """Read and type-check a suite file; every problem is one `RobustRLError` line."""
    path = Path(path)
    data = read_toml(path, "suite file")
    if "name" not in data:
        data["name"] = path.stem
    try:
        suite = from_dict(SuiteConfig, data)
    except TypeError as e:  # a required field is missing
        raise RobustRLError(f"suite {path}: {_missing(e)}") from None
    except RobustRLError as e:
        raise RobustRLError(f"suite {path}: {e}") from None
    _check_values(suite, path)
    return suite


def _missing(e: TypeError) -> str:
    text = str(e)
    if "missing" in text and "argument" in text:
        names = text.split("argument", 1)[1].lstrip("s: ").replace("'", "")
        return f"missing required key(s) {names} (see robustrl/bench/suite.py for the schema)"
    return text


def _check_values(suite: SuiteConfig, path: Path) -> None:
    where = f"suite {path}"
    if not suite.train:
        raise RobustRLError(f"{where}: needs at least one [[train]] entry (agents, envs, steps)")
    if not suite.seeds or len(set(suite.seeds)) != len(suite.seeds):
        raise RobustRLError(f"{where}: seeds must be a non-empty list of distinct integers")
    if suite.episodes < 1:
        raise RobustRLError(f"{where}: episodes must be >= 1, got {suite.episodes}")
    if not suite.lipschitz_eps > 0 or suite.lipschitz_obs < 1:
        raise RobustRLError(f"{where}: lipschitz_eps must be > 0 and lipschitz_obs >= 1")
    for i, entry in enumerate(suite.train):
        if not entry.agents or not entry.envs:
            raise RobustRLError(f"{where}: train[{i}] needs non-empty agents and envs lists")
        if entry.steps < 1:
            raise RobustRLError(f"{where}: train[{i}].steps must be >= 1, got {entry.steps}")
        if len(set(entry.score_agents)) != len(entry.score_agents):
            raise RobustRLError(f"{where}: train[{i}].score_agents repeats an agent")
    for i, entry in enumerate(suite.perturbations):
        if not entry.strengths:
            raise RobustRLError(f"{where}: perturbations[{i}] ({entry.spec}) has no strengths")
        if len(set(entry.strengths)) != len(entry.strengths):
            raise RobustRLError(f"{where}: perturbations[{i}] ({entry.spec}) repeats a strength")


def with_strength(entry_spec: str, strength: float) -> str:
    """`obs-pgd,steps=5` at 0.1 -> the canonical full spec string `obs-pgd:0.1,steps=5`."""
    from robustrl.perturb import parse

    head, *options = entry_spec.split(",")
    if ":" in head:
        raise RobustRLError(f"perturbation spec '{entry_spec}' must not contain a strength; "
                            "list strengths in `strengths = [...]`")
    return str(parse(",".join([f"{head.strip()}:{strength!r}", *options])))


def suite_hash(suite: SuiteConfig) -> str:
    """Hash of everything that determines a suite's results (`out` is only a location)."""
    data = to_dict(suite)
    data.pop("out", None)
    for key in ("random_baseline", "controllers"):  # add cells of their own, change no row
        data.pop(key, None)
    for entry in data["train"]:  # unset: the hash suites had before the key existed
        if not entry["score_agents"]:
            del entry["score_agents"]
    return digest(data)


def _dummy_policy(obs):  # validation only: obs-pgd needs some policy to bind to
    return obs


def _dummy_adversary(obs, agent):  # validation only: the worker trains the real one
    return None


def trained_adversary(spec: str) -> bool:
    """Whether a cell's spec is `adversary-agents,...,policy=adversary`: the bench worker
    trains that adversary (robustrl.bench.adversary) against the job's trained agent."""
    from robustrl.perturb import parse

    parsed = parse(spec)
    return parsed.kind == "adversary-agents" and parsed.get("policy") == "adversary"


def plan_suite(suite: SuiteConfig, out: str | Path | None = None,
               check_envs: bool = True) -> Plan:
    """Expand `suite` to jobs and cells, validating everything before anything runs.

    With `check_envs`, each env is built once and every perturbation applied to it at every
    strength, so e.g. `dyn-mass` on a traffic env fails here, not hours into a sweep.
    """
    from robustrl.train import build_run

    out = Path(out if out is not None else suite.out or f"runs/bench/{suite.name}").resolve()
    specs: list[tuple[PerturbationEntry, list[tuple[str, float]]]] = []
    for entry in suite.perturbations:
        try:
            specs.append((entry, [(with_strength(entry.spec, s), s) for s in entry.strengths]))
        except RobustRLError as e:
            raise RobustRLError(f"suite {suite.name}: perturbation '{entry.spec}': {e}") from None
    jobs: list[Job] = []
    checked: set[tuple[str, str]] = set()
    for entry in suite.train:
        for agent in entry.agents:
            for env_id in entry.envs:
                where = f"suite {suite.name}: {agent} on {env_id}"
                try:  # unknown agents and env ids, unsupported combinations: one line
                    runs = [build_run(agent, env_id, entry.steps, seed, _flatten(entry.set))
                            for seed in suite.seeds]
                except RobustRLError as e:
                    raise RobustRLError(f"{where}: {e}") from None
                applicable = [(e, ss) for e, ss in specs
                              if any(fnmatch.fnmatch(env_id, g) for g in e.envs)]
                key = (agent, digest([env_id, runs[0].env]))
                if check_envs and (*key, *entry.score_agents) not in checked:
                    _check_env(where, agent, env_id, runs[0].env, applicable, entry.score_agents)
                    checked.add((*key, *entry.score_agents))
                label = entry.label or agent
                for seed, run in zip(suite.seeds, runs):
                    jobs.append(_job(suite, out, agent, label, env_id, seed, run, applicable,
                                     entry.score_agents))
    all_envs = [env_id for entry in suite.train for env_id in entry.envs]
    for entry in suite.perturbations:  # a glob that matches no env would drop it silently
        if not any(fnmatch.fnmatch(env_id, g) for g in entry.envs for env_id in all_envs):
            raise RobustRLError(f"suite {suite.name}: perturbation '{entry.spec}' applies to no "
                                f"env (envs = {list(entry.envs)} matches none of "
                                f"{sorted(set(all_envs))}); fix the glob or drop the entry")
    references = [(RANDOM, jobs)] * suite.random_baseline + _controllers(suite, jobs)
    for label in {RANDOM, *(label for label, _ in references)}:
        if any(j.label == label for j in jobs):
            raise RobustRLError(f"suite {suite.name}: the label '{label}' is reserved for the "
                                "reference policy of that name; rename that [[train]] entry")
    jobs += [job for label, base in references for job in reference_jobs(base, label)]
    ids = [j.run_id for j in jobs]
    if len(set(ids)) != len(ids):
        raise RobustRLError(f"suite {suite.name}: the same agent × env × seed is trained twice "
                            "with the same settings; remove the duplicate [[train]] entry")
    keys = [(j.label, j.env, j.seed) for j in jobs]
    if len(set(keys)) != len(keys):  # reports would average two configurations as one
        label, env_id, _ = next(k for k in keys if keys.count(k) > 1)
        raise RobustRLError(f"suite {suite.name}: {label} on {env_id} is trained with two "
                            "different settings under one name; give the [[train]] entries "
                            "distinct `label`s")
    from robustrl.bench.transfer import link_surrogates

    link_surrogates(jobs, suite.name)
    return Plan(suite=suite, suite_hash=suite_hash(suite), out=out, jobs=jobs)


def _flatten(overrides: dict[str, Any]) -> dict[str, Any]:
    """`{env = {max_episode_steps = 50}}` -> `{"env.max_episode_steps": 50}` (TOML tables and
    quoted dotted keys both work, as with `--set`)."""
    flat: dict[str, Any] = {}
    from robustrl.train import SECTIONS

    for key, value in overrides.items():
        if key in SECTIONS and isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in _flatten(value).items()})
        else:
            flat[key] = value
    return flat


def _job(suite: SuiteConfig, out: Path, agent: str, label: str, env_id: str, seed: int,
         run: Any, applicable: list[tuple[PerturbationEntry, list[tuple[str, float]]]],
         score_agents: list[str]) -> Job:
    from robustrl.train import run_to_dict

    run_data = run_to_dict(run)
    for key in ("tensorboard", "checkpoint_every", "threads", "eval_every", "eval_episodes",
                "track"):  # do not change results
        run_data["run"].pop(key, None)
    run_id = digest(run_data)
    slug = re.sub(r"[^A-Za-z0-9.+-]+", "-", label).strip("-")
    name = f"{slug}_{env_id.replace('/', '-')}_seed{seed}_{run_id[:8]}"
    evaluation = [run_id, suite.episodes, suite.eval_seed]
    if score_agents:  # changes every row; unset keeps the ids cells had before the key existed
        evaluation.append({"score_agents": score_agents})
    cells = [Cell(digest([*evaluation, CLEAN]), CLEAN, CLEAN, None)]
    for entry, pairs in applicable:
        for spec, strength in pairs:
            if any(c.spec == spec for c in cells):
                raise RobustRLError(f"suite {suite.name}: {spec} is listed twice for {env_id}; "
                                    "remove one of the [[perturbations]] entries")
            cells.append(Cell(digest([*evaluation, spec]), entry.spec, spec, float(strength)))
    return Job(run_id=run_id, agent=agent, env=env_id, label=label, seed=seed, run=run,
               run_dir=str(out / "runs" / name), cells=cells, episodes=suite.episodes,
               eval_seed=suite.eval_seed, lipschitz_eps=suite.lipschitz_eps,
               lipschitz_obs=suite.lipschitz_obs, score_agents=list(score_agents))


def reference_jobs(jobs: list[Job], reference: str = RANDOM) -> list[Job]:
    """One job per env (settings, scored agents) × seed evaluating a reference policy (a
    uniformly random one, or a traffic controller) on the same cells as the learners; the
    worker plays it instead of training, and its rows are stored like a learner's under the
    reference's name."""
    import dataclasses

    out: dict[str, Job] = {}
    for job in jobs:
        run_id = digest([reference, job.env, job.run.env, job.score_agents, job.seed])
        if run_id in out:
            continue
        evaluation = [run_id, job.episodes, job.eval_seed, job.score_agents]
        cells = [dataclasses.replace(c, id=digest([*evaluation, c.spec])) for c in job.cells]
        name = f"{reference}_{job.env.replace('/', '-')}_seed{job.seed}_{run_id[:8]}"
        out[run_id] = dataclasses.replace(job, run_id=run_id, label=reference, cells=cells,
                                          run_dir=str(Path(job.run_dir).parent / name),
                                          reference=reference, surrogates={})
    return list(out.values())


def _controllers(suite: SuiteConfig, jobs: list[Job]) -> list[tuple[str, list[Job]]]:
    """(name, the traffic jobs of the suite's first seed: one run per env) per checked entry of
    `suite.controllers` (known names, and a traffic env to run them on)."""
    if not suite.controllers:
        return []
    from robustrl.envs.traffic_baselines import CONTROLLERS

    unknown = sorted(set(suite.controllers) - set(CONTROLLERS))
    if unknown or len(set(suite.controllers)) != len(suite.controllers):
        raise RobustRLError(f"suite {suite.name}: controllers = {suite.controllers} — list each "
                            f"of {sorted(CONTROLLERS)} at most once")
    traffic = [j for j in jobs if j.env.startswith("traffic/") and j.seed == suite.seeds[0]]
    if not traffic:
        raise RobustRLError(f"suite {suite.name}: controllers are traffic-signal controllers and "
                            "the suite has no traffic/* env; remove `controllers`")
    return [(name, traffic) for name in suite.controllers]


def check_score_agents(score_agents: list[str], agents: list[str], env_id: str) -> None:
    """One line unless every name in `score_agents` is one of `agents`, the env's agent ids
    (none: a single-agent env)."""
    if not score_agents:
        return
    if not agents:
        raise RobustRLError(f"score_agents only applies to multi-agent (PettingZoo) envs; "
                            f"{env_id} is single-agent")
    unknown = [a for a in score_agents if a not in agents]
    if unknown:
        raise RobustRLError(f"score_agents: unknown agent(s) {', '.join(unknown)}; {env_id}'s "
                            f"agents are {', '.join(agents)}")


def _check_env(where: str, agent: str, env_id: str, env_kwargs: dict[str, Any],
               applicable: list[tuple[PerturbationEntry, list[tuple[str, float]]]],
               score_agents: list[str]) -> None:
    from robustrl.agents import agent_class
    from robustrl.envs import make
    from robustrl.perturb import apply
    from robustrl.perturb.adversary import spec_target

    try:
        env = make(env_id, **env_kwargs)
    except RobustRLError as e:
        raise RobustRLError(f"{where}: {e}") from None
    try:
        agent_class(agent).spaces_of(env)  # the learner's own one-line refusal
        check_score_agents(score_agents, [str(a) for a in getattr(env, "possible_agents", ())],
                           env_id)
        for _, pairs in applicable:
            for spec, _ in pairs:
                adversary = _dummy_adversary if trained_adversary(spec) else None
                apply(env, [spec], policy_fn=_dummy_policy, adversary=adversary, seed=0,
                      surrogate_fn=_dummy_policy)
                if adversary is not None:  # the worker trains one adversary: k must be 1
                    spec_target(spec, [str(a) for a in env.possible_agents])
    except RobustRLError as e:
        raise RobustRLError(f"{where}: {e}") from None
    finally:
        env.close()


