"""Offline training: a worker learns from a dataset file and is evaluated in the env.

A run directory holds
    config.toml      [run] (agent, dataset, steps = gradient steps, evaluation) and [agent]
    metrics.csv      losses every `log_every` updates; eval_return, normalized_score and
                     success every `eval_every` updates and at the end (tb/: TensorBoard)
    checkpoint.pt    the latest training state, written atomically (resume continues it)
    agent.pt         the final worker, written when training completes

The normalized score uses the dataset's reference returns (random policy and
planner-controller on the same env version and the same episode seeds); a PointMaze dataset
without them (e.g. a D4RL/Minari file) gets them measured once before training.
The IQL-TD-MPC manager trains in `robustrl.train.manager`; a worker uses it via run.manager.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w
import torch

from robustrl.agents import AGENTS, agent_class, capabilities, resolve_config
from robustrl.agents.base import CHECKPOINT_FORMAT, read_checkpoint
from robustrl.agents.offline import OfflineWorker, TransitionSampler, env_input, torch_device
from robustrl.agents.tdmpc import IntentPolicy, load_manager
from robustrl.core.config import from_dict, replace, to_dict
from robustrl.core.errors import RobustRLError
from robustrl.core.guards import DATA_WAY_OUT, check_finite, check_logged, modules_of
from robustrl.core.io import atomic_torch_save, atomic_write_text
from robustrl.core.logging import MetricsLogger, host_floats
from robustrl.core.normalizer import FixedNormalizer
from robustrl.core.progress import progress
from robustrl.core.provenance import provenance
from robustrl.data.dataset import OfflineDataset, load_dataset, peek_env_id
from robustrl.data.generate import GenerateConfig, reference_returns, rollout_returns
from robustrl.envs import make
from robustrl.train.rundir import lock_run, read_run_toml, run_provenance


# ----------------------------------------------------------------------------- learners
def offline_agents() -> list[str]:
    """Registry names of the offline learners (the workers and the tdmpc manager)."""
    return sorted(n for n in AGENTS if capabilities(n).learning == "offline")


def worker_names() -> list[str]:
    """Registry names of the offline learners a dataset run trains (all but managers)."""
    return [n for n in offline_agents() if issubclass(agent_class(n), OfflineWorker)]


def offline_worker_class(name: str) -> type[OfflineWorker]:
    """The worker class registered as `name`; any other name is refused in one line."""
    if name not in AGENTS or capabilities(name).learning != "offline":
        raise RobustRLError(f"unknown offline agent '{name}'; available: "
                            f"{', '.join(worker_names())}")
    cls = agent_class(name)
    if not issubclass(cls, OfflineWorker):
        raise RobustRLError(f"{name} is a manager, not a worker: train it with "
                            f"`robustrl train --agent {name} --dataset FILE`, then a worker "
                            f"({', '.join(worker_names())}) with --set run.manager=DIR")
    return cls


# ----------------------------------------------------------------------------- config
@dataclass
class OfflineRunConfig:
    agent: str
    """Offline algorithm: iql, td3bc, awac or cql."""
    dataset: str
    """Dataset file (.npz, D4RL .hdf5) or Minari dataset folder."""
    steps: int
    """Gradient steps."""
    env: str = ""
    """Env id to evaluate in ("": the dataset's own)."""
    seed: int = 0
    eval_every: int = 10_000
    """Gradient steps between evaluations (one more at the end)."""
    eval_episodes: int = 10
    """Episodes per evaluation."""
    eval_seed: int = 10_000
    """Seed of the first evaluation episode (the datasets' reference returns use 10,000 on)."""
    log_every: int = 1000
    """Gradient steps between rows of losses in metrics.csv."""
    checkpoint_every: int = 10_000
    """Gradient steps between checkpoints (one is also written at the end)."""
    normalize: bool = True
    """Normalize inputs by the dataset's mean and std."""
    manager: str = ""
    """Run directory (or manager.pt) of a trained IQL-TD-MPC manager: the worker then learns
    and acts on [observation, goal, intent], the intent replanned every k steps."""
    threads: int = 1
    """torch threads (small networks are fastest on one; 0 keeps torch's default)."""
    device: str = "cpu"
    """Torch device of the networks and the dataset ("cuda" on a GPU machine; CQL gains most)."""
    tensorboard: bool = True


@dataclass
class OfflineRun:
    run: OfflineRunConfig
    agent: Any = None
    references: dict[str, float] = field(default_factory=dict)
    """Reference returns measured for a dataset that had none (ref_min_score, ref_max_score)."""


@dataclass
class OfflineResult:
    worker: OfflineWorker
    evaluation: dict[str, Any]
    out: Path | None


def split_overrides(overrides: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(`run.x` keys, agent keys): `agent.x` and bare keys (`beta`) both set the agent."""
    run_keys, agent_keys = {}, {}
    for key, value in (overrides or {}).items():
        head, dot, rest = key.partition(".")
        if dot and head == "run":
            run_keys[rest] = value
        else:
            agent_keys[rest if dot and head == "agent" else key] = value
    return run_keys, agent_keys


def build_offline_run(agent: str, dataset: str | Path, steps: int, seed: int = 0,
                      env: str | None = None,
                      overrides: dict[str, Any] | None = None) -> OfflineRun:
    """Dataclass defaults <- agents/<agent>.toml (by env id) <- overrides (`run.x` or agent)."""
    offline_worker_class(agent)
    run_keys, agent_keys = split_overrides(overrides)
    run = replace(OfflineRunConfig(agent=agent, dataset=str(dataset), steps=steps, seed=seed,
                                   env=env or ""), run_keys, prefix="run.")
    if run.steps < 1:
        raise RobustRLError(f"--steps must be positive, got {run.steps}")
    return OfflineRun(run=run, agent=resolve_config(agent, run.env or peek_env_id(run.dataset),
                                                    agent_keys))


def save_offline_config(out: Path, cfg: OfflineRun) -> None:
    data = {"run": to_dict(cfg.run), "agent": to_dict(cfg.agent)}
    if cfg.references:
        data["references"] = dict(cfg.references)
    data["provenance"] = run_provenance(cfg.run.env, {})  # a record; read back by nothing
    atomic_write_text(out / "config.toml", tomli_w.dumps(data))


def load_offline_config(out: str | Path) -> OfflineRun:
    data = read_run_toml(out)
    name = data.get("run", {}).get("agent")
    if name in AGENTS and not issubclass(agent_class(name), OfflineWorker):
        raise RobustRLError(f"{out} is a manager run; manager training does not resume, "
                            "train it again into a new --out")
    run = from_dict(OfflineRunConfig, data.get("run", {}), prefix="run.")
    agent = from_dict(offline_worker_class(run.agent).Config, data.get("agent", {}),
                      prefix="agent.")
    return OfflineRun(run=run, agent=agent, references=dict(data.get("references", {})))


def is_offline_run(out: str | Path) -> bool:
    """Whether run directory `out` was written by offline training."""
    path = Path(out) / "config.toml"
    try:
        return "dataset" in tomllib.loads(path.read_text()).get("run", {})
    except (OSError, tomllib.TOMLDecodeError):
        return False


# ----------------------------------------------------------------------------- evaluation
def make_policy(worker: OfflineWorker, use_goal: bool) -> Callable[[Any], np.ndarray]:
    """Env observation -> action: [observation, desired_goal] on goal-conditioned data."""
    return lambda obs: worker.act(env_input(obs, use_goal), deterministic=True)


def evaluate_worker(worker: OfflineWorker, env_id: str, episodes: int, seed: int,
                    use_goal: bool, env_kwargs: dict[str, Any] | None = None,
                    references: dict[str, float] | None = None,
                    manager: Any = None) -> dict[str, Any]:
    """Mean return (and success, normalized score when references are known) in the env.

    With an IQL-TD-MPC `manager`, the worker acts on [observation, goal, intent]."""
    policy = IntentPolicy(manager, worker, use_goal, seed) if manager is not None else \
        make_policy(worker, use_goal)
    env = make(env_id, **(env_kwargs or {}))
    try:
        result = rollout_returns(env, policy, episodes, seed)
    finally:
        env.close()
    out: dict[str, Any] = {"eval_return": float(np.mean(result["returns"])),
                           "eval_return_std": float(np.std(result["returns"])),
                           "success": float(np.mean(result["success"]))}
    low, high = (references or {}).get("ref_min_score"), (references or {}).get("ref_max_score")
    if low is not None and high is not None and high != low:
        out["normalized_score"] = 100.0 * (out["eval_return"] - low) / (high - low)
    return out


def _references(data: OfflineDataset, cfg: OfflineRun, env_id: str) -> dict[str, float]:
    meta = data.metadata
    if meta.get("ref_min_score") is not None and meta.get("ref_max_score") is not None:
        return {"ref_min_score": meta["ref_min_score"], "ref_max_score": meta["ref_max_score"]}
    if cfg.references:
        return cfg.references
    if env_id.startswith("maze/PointMaze_"):
        refs = reference_returns(env_id, GenerateConfig(
            ref_episodes=max(cfg.run.eval_episodes, 10), ref_seed=cfg.run.eval_seed))
        cfg.references = {k: refs[k] for k in ("ref_min_score", "ref_max_score")}
        return cfg.references
    return {}


# ----------------------------------------------------------------------------- training
def train_offline(dataset: str | Path, agent: str = "iql", steps: int = 100_000,
                  out: str | Path | None = None, seed: int = 0, env: str | None = None,
                  overrides: dict[str, Any] | None = None, show_progress: bool = True,
                  resume: bool = False) -> OfflineResult:
    """Train offline agent `agent` for `steps` gradient steps on `dataset`, evaluate in the env.

    With `out`, writes a run directory (see the module docstring); `resume=True` continues
    the run in `out` from its checkpoint (its saved config is used, the other arguments are
    ignored). `overrides`: `run.eval_every`, `run.eval_episodes`, ... or agent
    hyperparameters (`beta`, `agent.expectile`, ...).
    """
    if resume:
        if out is None:
            raise RobustRLError("resume needs the run directory (out)")
        cfg = load_offline_config(out)
    else:
        cfg = build_offline_run(agent, dataset, steps, seed, env, overrides)
    return run_offline(cfg, out, resume=resume, show_progress=show_progress)


def run_offline(cfg: OfflineRun, out: str | Path | None, resume: bool = False,
                show_progress: bool = True) -> OfflineResult:
    r = cfg.run
    if r.threads > 0:
        torch.set_num_threads(r.threads)
    device = torch_device(r.device)
    data = load_dataset(r.dataset)
    for key in ("observations", "actions", "rewards", "next_observations"):
        check_finite(getattr(data, key), f"dataset {r.dataset}: {key}", DATA_WAY_OUT)
    env_id = r.env or data.env_id
    if not env_id:
        raise RobustRLError(f"dataset {r.dataset} does not name its env; pass --env ID")
    out = Path(out) if out is not None else None
    lock = lock_run(out) if out is not None and resume else None  # one process per run
    if out is not None and not resume and (out / "config.toml").exists():
        raise RobustRLError(f"{out} already holds a run; use --resume {out} or another --out")
    references = _references(data, cfg, env_id)
    use_goal = data.goals is not None
    inputs, next_inputs = data.policy_inputs()
    manager = None
    if r.manager:
        manager = load_manager(r.manager, device)
        if manager.in_dim != inputs.shape[1]:
            raise RobustRLError(f"manager {r.manager} takes inputs of size {manager.in_dim}; "
                                f"this dataset gives {inputs.shape[1]}")
        intents, next_intents = manager.relabel(inputs, data.episode_ends, seed=r.seed)
        inputs = np.concatenate([inputs, intents], 1)
        next_inputs = np.concatenate([next_inputs, next_intents], 1)
    env_kwargs = dict(data.metadata.get("eval_env_kwargs") or {})
    action_low, action_high = _action_bounds(env_id, env_kwargs, data)

    worker = offline_worker_class(r.agent)(
        inputs.shape[1], data.actions.shape[1], cfg.agent, seed=r.seed,
        normalizer=FixedNormalizer.fit(inputs) if r.normalize else None,
        action_low=action_low, action_high=action_high, device=device)
    sampler = TransitionSampler(inputs, data.actions, data.rewards, next_inputs,
                                data.terminals.astype(np.float32), seed=r.seed, device=device)
    resume_step = None
    if out is not None:
        if resume and (out / "checkpoint.pt").exists():
            _restore(worker, sampler, out / "checkpoint.pt")
            resume_step = worker.num_updates
        elif resume:
            resume_step = 0
        else:
            out.mkdir(parents=True, exist_ok=True)
            lock = lock_run(out)
            save_offline_config(out, cfg)
    logger = (MetricsLogger(out, resume_step=resume_step, tensorboard=r.tensorboard)
              if out is not None else None)

    def evaluate() -> dict[str, Any]:
        return evaluate_worker(worker, env_id, r.eval_episodes, r.eval_seed, use_goal,
                               env_kwargs, references, manager)

    bar = progress(r.steps, desc=f"{r.agent} {Path(r.dataset).name}",
                   initial=worker.num_updates, unit="update") if show_progress else None
    evaluation: dict[str, Any] = {}
    last_log, tick = worker.num_updates, time.perf_counter()
    try:
        while worker.num_updates < r.steps:
            metrics = worker.update(sampler.sample(cfg.agent.batch_size))
            n = worker.num_updates
            if n % r.log_every == 0 or n == r.steps:
                metrics = host_floats(metrics)
                now = time.perf_counter()
                metrics["updates_per_s"] = (n - last_log) / max(now - tick, 1e-9)
                last_log, tick = n, now
                if n % r.eval_every == 0 or n == r.steps:
                    evaluation = evaluate()
                    metrics.update(evaluation)
                    tick = time.perf_counter()
                check_logged(n, metrics, modules_of(worker))
                if logger is not None:
                    logger.log(n, metrics)
                if bar is not None:
                    bar.update(n - bar.n)
                    if "normalized_score" in evaluation:
                        bar.set_postfix(score=f"{evaluation['normalized_score']:.1f}",
                                        refresh=False)
            if out is not None and (n % r.checkpoint_every == 0 or n == r.steps):
                if logger is not None:
                    logger.flush()
                _save(worker, sampler, cfg, out / "checkpoint.pt")
    finally:
        if bar is not None:
            bar.close()
        if logger is not None:
            logger.close()
    if not evaluation:  # resumed a finished run, or steps hit before any evaluation
        evaluation = evaluate()
    if out is not None:
        _save(worker, sampler, cfg, out / "agent.pt")
    if lock is not None:
        lock.close()
    return OfflineResult(worker, evaluation, out)


def _action_bounds(env_id: str, env_kwargs: dict[str, Any],
                   data: OfflineDataset) -> tuple[np.ndarray, np.ndarray]:
    env = make(env_id, **env_kwargs)
    try:
        space = env.action_space
        if not hasattr(space, "low") or space.shape != data.actions.shape[1:]:
            raise RobustRLError(f"env {env_id} has action space {space}; the dataset's actions "
                                f"have shape {data.actions.shape[1:]}")
        return space.low, space.high
    finally:
        env.close()


def _save(worker: OfflineWorker, sampler: TransitionSampler, cfg: OfflineRun,
          path: Path) -> None:
    atomic_torch_save({"format": CHECKPOINT_FORMAT, "kind": "offline", "agent": worker.name,
                       "obs_dim": worker.obs_dim, "act_dim": worker.act_dim,
                       "config": to_dict(cfg.agent), "run": to_dict(cfg.run),
                       "state": worker.state_dict(),
                       "sampler_rng": sampler.generator.get_state(),
                       "torch_rng": torch.get_rng_state(), "provenance": provenance()}, path)


def _restore(worker: OfflineWorker, sampler: TransitionSampler, path: Path) -> None:
    checkpoint = read_checkpoint(path, kind="offline")
    worker.load_state_dict(checkpoint["state"])
    sampler.generator.set_state(checkpoint["sampler_rng"])
    torch.set_rng_state(checkpoint["torch_rng"])


def load_worker(path: str | Path) -> OfflineWorker:
    """A trained worker from a run directory (agent.pt, else checkpoint.pt) or a file."""
    path = Path(path)
    if path.is_dir():
        path = next((path / n for n in ("agent.pt", "checkpoint.pt") if (path / n).exists()),
                    path / "agent.pt")
    checkpoint = read_checkpoint(path, kind="offline")
    cls = offline_worker_class(checkpoint["agent"])
    worker = cls(checkpoint["obs_dim"], checkpoint["act_dim"],
                 from_dict(cls.Config, checkpoint["config"]))
    worker.load_state_dict(checkpoint["state"])
    return worker
