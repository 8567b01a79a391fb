"""A run: train an agent into a run directory, resume it, evaluate it.

A run directory holds
    config.toml      the resolved configuration ([run], [env] kwargs, [agent] hyperparameters)
    metrics.csv      one row per log event; tb/ the same as TensorBoard events
    checkpoint.pt    the latest full training state (replay buffer included), written atomically
    agent.pt         the final agent, written when training completes
    best.pt          the best agent of the evaluations during training (run.eval_every > 0)
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
import torch

from robustrl.agents import agent_class, load, resolve_config
from robustrl.agents.base import Agent, read_checkpoint
from robustrl.core.config import from_dict, replace, to_dict
from robustrl.core.device import torch_device
from robustrl.core.errors import RobustRLError
from robustrl.core.guards import NonFiniteError, at_step, check_logged, modules_of
from robustrl.core.io import atomic_write_text
from robustrl.core.logging import MetricsLogger
from robustrl.core.tracking import check_tracker, make_tracker
from robustrl.reward import HeronConfig, RewardConfig
from robustrl.train.eval_during import PeriodicEval, check_eval
from robustrl.train.pipeline import training_envs
from robustrl.train.rundir import (
    check_agent_file,
    lock_run,
    read_run_toml,
    record_inexact_resume,
    run_provenance,
)
from robustrl.train.support import check_supported


@dataclass
class RunConfig:
    agent: str
    """Algorithm name (`sac`, `ppo`, ...)."""
    env: str
    """Environment id (`robustrl envs` lists them)."""
    steps: int
    """Total environment steps to train for."""
    seed: int = 0
    checkpoint_every: int = 10_000
    """Env steps between checkpoints (a checkpoint is also written at the end)."""
    threads: int = 1
    """torch threads; small networks are fastest on one, 0 keeps torch's default."""
    tensorboard: bool = True
    imports: tuple[str, ...] = ()
    """Modules imported before the env is made (they register the user's own envs)."""
    eval_every: int = field(default=0, metadata={"range": ">= 0"})
    """Env steps between evaluations on a separate env (0: none); the best agent goes to
    best.pt, the scores to metrics.csv as eval/return_mean (robustrl.train.eval_during)."""
    eval_episodes: int = 5
    """Deterministic episodes per evaluation during training."""
    track: str = "none"
    """Experiment tracker besides TensorBoard: none or wandb (extra robustrl[wandb])."""
    device: str = "cpu"
    """Torch device of the learner's networks and replayed batches (cuda: learners whose
    capabilities say gpu, `robustrl agents`)."""


@dataclass
class Run:
    """Everything a run directory's config.toml holds."""

    run: RunConfig
    env: dict[str, Any] = field(default_factory=dict)
    agent: Any = None
    reward: RewardConfig = field(default_factory=RewardConfig)
    """Where the agent's reward comes from (env, learned from preferences, HERON, weighted)."""
    heron: HeronConfig = field(default_factory=HeronConfig)
    """HERON's factor ranking and margins (used by reward.method = heron / weighted)."""


SECTIONS = ("run", "env", "agent", "reward", "heron")


def build_run(agent: str, env: str, steps: int, seed: int = 0,
              overrides: dict[str, Any] | None = None) -> Run:
    """Resolve a run's config: defaults, then agents/<agent>.toml, then `overrides`.

    Override keys are `run.x`, `env.x` (env kwargs), `agent.x`, or bare agent keys (`lr`).
    An unknown env id, or a combination the agent does not support (`support`), is refused
    here in one line, before anything is written or trained.
    """
    sections: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for key, value in (overrides or {}).items():
        head, dot, rest = key.partition(".")
        if dot and head in SECTIONS:
            sections[head][rest] = value
        else:
            sections["agent"][key] = value
    import_user_modules(tuple(sections["run"].get("imports", ())))  # they register env ids
    check_supported(agent, env, sections)
    run = replace(RunConfig(agent=agent, env=env, steps=steps, seed=seed), sections["run"],
                  prefix="run.")
    return Run(run=run, env=dict(sections["env"]),
               agent=resolve_config(run.agent, run.env, sections["agent"]),
               reward=replace(RewardConfig(), sections["reward"], prefix="reward."),
               heron=replace(HeronConfig(), sections["heron"], prefix="heron."))


def run_to_dict(cfg: Run) -> dict[str, Any]:
    """The sections of a run config that are set (reward/heron only when used)."""
    data = {"run": to_dict(cfg.run), "env": cfg.env, "agent": to_dict(cfg.agent)}
    if cfg.reward.method != "none":
        data.update(reward=to_dict(cfg.reward), heron=to_dict(cfg.heron))
    return data


def save_run_config(directory: Path, cfg: Run) -> None:
    provenance = run_provenance(cfg.run.env, cfg.env)  # read back by nothing: a record
    atomic_write_text(directory / "config.toml",
                      tomli_w.dumps({**run_to_dict(cfg), "provenance": provenance}))


def load_run_config(directory: str | Path) -> Run:
    data = read_run_toml(directory)
    run = from_dict(RunConfig, data.get("run", {}), prefix="run.")
    agent_cfg = from_dict(agent_class(run.agent).Config, data.get("agent", {}), prefix="agent.")
    return Run(run=run, env=dict(data.get("env", {})), agent=agent_cfg,
               reward=from_dict(RewardConfig, data.get("reward", {}), prefix="reward."),
               heron=from_dict(HeronConfig, data.get("heron", {}), prefix="heron."))


def import_user_modules(modules: tuple[str, ...]) -> None:
    """Import the modules that register a user's envs (the working directory is searched)."""
    if modules and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise RobustRLError(f"cannot import module '{name}' ({e}); it must be importable "
                                "from the working directory or installed") from None
        except Exception as e:  # the user's module itself fails: say where, in one line
            raise RobustRLError(f"importing module '{name}' failed: {type(e).__name__}: {e}; "
                                "fix the module (run `python -c 'import "
                                f"{name}'` for the traceback)") from None


def set_threads(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)


def holds_run(out: Path) -> bool:
    """Whether `out` holds a started run (a config.toml alone is a run that failed before its
    first step: the corrected command may reuse the directory)."""
    return (out / "config.toml").exists() and any(
        (out / f).exists() for f in ("metrics.csv", "checkpoint.pt", "agent.pt"))


def train(cfg: Run, out: str | Path, resume: bool = False,
          show_progress: bool = True, on_log: Callable[[Agent], None] | None = None) -> Agent:
    """Train into run directory `out`; with `resume`, continue from its last checkpoint.

    `on_log(agent)` runs after each log event (tuning evaluates and prunes there).

    The agent gets the run's env factory (`pipeline.training_envs`): with a learned reward
    every env it makes is wrapped by the preference loop.
    """
    out = Path(out)
    set_threads(cfg.run.threads)
    import_user_modules(cfg.run.imports)
    check_tracker(cfg.run.track)
    check_eval(cfg.run.eval_every, cfg.run.eval_episodes)
    torch_device(cfg.run.device)  # refused before the run directory is made
    checkpoint_path = out / "checkpoint.pt"
    lock = lock_run(out) if resume else None  # held until this returns; freed if killed
    if not resume and holds_run(out):
        raise RobustRLError(f"{out} already holds a run; use --resume {out} or another --out")
    cls = agent_class(cfg.run.agent)
    # made before the run directory: an env the learner cannot use leaves nothing behind
    envs, loop = training_envs(cls, cfg.run.env, cfg.env, cfg.agent, cfg.reward, cfg.heron,
                               cfg.run.seed)
    if not resume:
        out.mkdir(parents=True, exist_ok=True)
        lock = lock_run(out)
        if holds_run(out):  # another process started it meanwhile
            raise RobustRLError(f"{out} already holds a run; use --resume {out} or another --out")
        save_run_config(out, cfg)
    # Building the reward model seeds torch's global generator; training continues from the
    # state it left, as when the loop was built after the agent (same results as before).
    torch_rng = torch.get_rng_state()
    agent = cls(envs, cfg.agent, seed=cfg.run.seed, env_kwargs=cfg.env, device=cfg.run.device)
    resume_step, note = None, {}
    if resume and checkpoint_path.exists():
        if not agent.resume(read_checkpoint(checkpoint_path)):
            record_inexact_resume(out, agent.num_steps, "an env's state cannot be saved")
            print(f"robustrl: note: resuming {out} at step {agent.num_steps} with new episodes "
                  "(this env's state cannot be saved); recorded in config.toml", file=sys.stderr)
            note = {"resumed_inexact_at": float(agent.num_steps)}  # on the next metrics row
        resume_step = agent.num_steps
    elif resume:
        resume_step = 0  # killed before the first checkpoint: start over, drop partial logs
    if loop is not None:
        if not resume_step:  # a restored checkpoint brought its own torch state
            torch.set_rng_state(torch_rng)
        if resume and (out / "reward.pt").exists() and resume_step:
            loop.load(out / "reward.pt")
    logger = MetricsLogger(out, resume_step=resume_step, tensorboard=cfg.run.tensorboard,
                           tracker=make_tracker(cfg.run.track, out, run_to_dict(cfg)))
    evals = PeriodicEval(out, cfg.run.eval_every, cfg.run.eval_episodes, cfg.run.seed,
                         logger.rows, start=agent.num_steps)
    last_checkpoint = agent.num_steps

    def callback(agent: Agent, metrics: dict[str, float]) -> None:
        nonlocal last_checkpoint, note
        check_logged(agent.num_steps, metrics, modules_of(agent))
        metrics, note = {**metrics, **note}, {}
        if loop is not None:
            metrics = {**metrics, **loop.on_callback(agent)}
        logger.log(agent.num_steps, {**metrics, **evals(agent)})
        if agent.num_steps - last_checkpoint >= cfg.run.checkpoint_every:
            logger.flush()
            agent.save(checkpoint_path, include_buffer=True)
            if loop is not None:
                loop.save(out / "reward.pt")
            last_checkpoint = agent.num_steps
        if on_log is not None:
            on_log(agent)

    try:
        agent.learn(cfg.run.steps, callback, progress=show_progress, threads=cfg.run.threads)
        if final := evals.final(agent):
            logger.log(agent.num_steps, final)
    except NonFiniteError as e:
        raise at_step(e, agent.num_steps) from None
    finally:
        logger.close()
    agent.save(checkpoint_path, include_buffer=True)
    if loop is not None:
        loop.save(out / "reward.pt")
    agent.save(out / "agent.pt")
    lock.close()
    return agent


def resume(out: str | Path) -> Agent:
    return train(load_run_config(out), out, resume=True)


def run_identity(cfg: Run) -> dict[str, Any]:
    """What an agent file of this run records about it (`Agent.save`'s keys)."""
    return {"agent": cfg.run.agent, "env_id": cfg.run.env, "env_kwargs": cfg.env,
            "seed": cfg.run.seed, "config": to_dict(cfg.agent)}


def load_run_agent(out: str | Path, which: str = "final") -> Agent:
    """The trained agent of a run directory: `which` = "final" (agent.pt, else the latest
    checkpoint) or "best" (best.pt, the best evaluation during training)."""
    out = Path(out)
    files = {"final": ("agent.pt", "checkpoint.pt"), "best": ("best.pt",)}
    if which not in files:
        raise RobustRLError(f"unknown agent '{which}' of a run; choose best or final")
    cfg = load_run_config(out)
    set_threads(cfg.run.threads)
    import_user_modules(cfg.run.imports)
    for name in files[which]:
        if (out / name).exists():
            check_agent_file(out / name, run_identity(cfg))
            return load(out / name)
    if which == "best":
        raise RobustRLError(f"{out} has no best.pt; train with --set run.eval_every=N to keep "
                            "the best agent of evaluations during training")
    raise RobustRLError(f"{out} has no checkpoint yet; train it first (robustrl train --resume)")


__all__ = ["SECTIONS", "Run", "RunConfig", "build_run", "import_user_modules", "load_run_agent",
           "load_run_config", "resume", "run_to_dict", "train"]
