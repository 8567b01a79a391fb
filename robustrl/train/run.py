"""A run: train an agent into a run directory, resume it, evaluate it.

A run directory holds
    config.toml      the resolved configuration ([run], [env] kwargs, [agent] hyperparameters)
    metrics.csv      one row per log event; tb/ the same as TensorBoard events
    checkpoint.pt    the latest full training state (replay buffer included), written atomically
    agent.pt         the final agent, written when training completes
"""

from __future__ import annotations

import importlib
import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w
import torch

from robustrl.agents import agent_class, make_agent, resolve_config
from robustrl.agents.base import Agent, read_checkpoint
from robustrl.core.config import from_dict, replace, to_dict
from robustrl.core.errors import RobustRLError
from robustrl.core.io import atomic_write_text
from robustrl.core.logging import MetricsLogger
from robustrl.core.progress import progress
from robustrl.reward.heron import HeronConfig
from robustrl.reward.rl import RewardConfig, build_loop


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
    """
    agent_class(agent)
    run = RunConfig(agent=agent, env=env, steps=steps, seed=seed)
    sections: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for key, value in (overrides or {}).items():
        head, dot, rest = key.partition(".")
        if dot and head in SECTIONS:
            sections[head][rest] = value
        else:
            sections["agent"][key] = value
    run = replace(run, sections["run"], prefix="run.")
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
    atomic_write_text(directory / "config.toml", tomli_w.dumps(run_to_dict(cfg)))


def read_run_toml(directory: str | Path) -> dict[str, Any]:
    """The parsed config.toml of a run directory (online or offline); one line if absent or
    malformed."""
    path = Path(directory) / "config.toml"
    if not Path(directory).is_dir():
        raise RobustRLError(f"run directory {directory} not found")
    if not path.is_file():
        raise RobustRLError(f"{directory} is not a run directory (no config.toml)")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise RobustRLError(f"{path} is malformed: {e}") from None


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


def set_threads(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)


def train(cfg: Run, out: str | Path, resume: bool = False) -> Agent:
    """Train into run directory `out`; with `resume`, continue from its last checkpoint."""
    out = Path(out)
    set_threads(cfg.run.threads)
    import_user_modules(cfg.run.imports)
    checkpoint_path = out / "checkpoint.pt"
    if not resume:
        if (out / "config.toml").exists():
            raise RobustRLError(f"{out} already holds a run; use --resume {out} or another --out")
        out.mkdir(parents=True, exist_ok=True)
        save_run_config(out, cfg)
    agent = agent_class(cfg.run.agent)(cfg.run.env, cfg.agent, seed=cfg.run.seed,
                                       env_kwargs=cfg.env)
    resume_step = None
    if resume and checkpoint_path.exists():
        agent.restore(read_checkpoint(checkpoint_path))
        resume_step = agent.num_steps
    elif resume:
        resume_step = 0  # killed before the first checkpoint: start over, drop partial logs
    loop = None  # learned / HERON / weighted rewards: robustrl.reward.rl wraps the agent's envs
    if cfg.reward.method != "none":
        loop = build_loop(cfg.reward, cfg.heron, agent, seed=cfg.run.seed)
        if resume and (out / "reward.pt").exists() and resume_step:
            loop.load(out / "reward.pt")
    logger = MetricsLogger(out, resume_step=resume_step, tensorboard=cfg.run.tensorboard)
    bar = progress(cfg.run.steps, desc=f"{cfg.run.agent} {cfg.run.env}", initial=agent.num_steps)
    last_checkpoint = agent.num_steps

    def callback(agent: Agent, metrics: dict[str, float]) -> None:
        nonlocal last_checkpoint
        if loop is not None:
            metrics = {**metrics, **loop.on_callback(agent)}
        logger.log(agent.num_steps, metrics)
        bar.update(agent.num_steps - bar.n)
        if "episode_return" in metrics:
            bar.set_postfix(ret=f"{metrics['episode_return']:.1f}", refresh=False)
        if agent.num_steps - last_checkpoint >= cfg.run.checkpoint_every:
            logger.flush()
            agent.save(checkpoint_path, include_buffer=True)
            if loop is not None:
                loop.save(out / "reward.pt")
            last_checkpoint = agent.num_steps

    try:
        agent.learn(cfg.run.steps, callback)
    finally:
        bar.close()
        logger.close()
        if loop is not None:
            loop.detach(agent)  # evaluation envs give the env reward again
    agent.save(checkpoint_path, include_buffer=True)
    if loop is not None:
        loop.save(out / "reward.pt")
    agent.save(out / "agent.pt")
    return agent


def resume(out: str | Path) -> Agent:
    return train(load_run_config(out), out, resume=True)


def load_run_agent(out: str | Path) -> Agent:
    """The trained agent of a run directory (final one, else the latest checkpoint)."""
    out = Path(out)
    cfg = load_run_config(out)
    set_threads(cfg.run.threads)
    import_user_modules(cfg.run.imports)
    for name in ("agent.pt", "checkpoint.pt"):
        if (out / name).exists():
            return _load(out / name)
    raise RobustRLError(f"{out} has no checkpoint yet; train it first (robustrl train --resume)")


def _load(path: Path) -> Agent:
    from robustrl.agents import load

    return load(path)


def evaluate(agent: Agent, episodes: int = 10, seed: int = 10_000, env=None,
             deterministic: bool = True) -> dict[str, Any]:
    """Run `episodes` episodes; returns mean/std of return and length plus the raw lists.

    On a PettingZoo ParallelEnv the return is the sum over agents, and the result adds each
    agent's mean return (`agent_returns`), its return per episode (`returns_by_agent`) and,
    when the env reports it (traffic), `mean_waiting_time` (the system mean waiting time
    averaged over steps and episodes).
    """
    if env is None:  # a multi-agent learner may need its eval env in another process (traffic)
        env = getattr(agent, "make_eval_env", agent.env_fn)()
    if hasattr(env, "possible_agents"):
        return _evaluate_parallel(agent, env, episodes, seed, deterministic)
    returns, lengths = [], []
    try:
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed + ep)
            done, total, length = False, 0.0, 0
            while not done:
                obs, reward, terminated, truncated, _ = env.step(agent.act(obs, deterministic))
                total += float(reward)
                length += 1
                done = terminated or truncated
            returns.append(total)
            lengths.append(length)
    finally:
        env.close()
    return {"episodes": episodes, "return_mean": float(np.mean(returns)),
            "return_std": float(np.std(returns)), "length_mean": float(np.mean(lengths)),
            "length_std": float(np.std(lengths)), "returns": returns, "lengths": lengths}


def _evaluate_parallel(agent: Agent, env: Any, episodes: int, seed: int,
                       deterministic: bool) -> dict[str, Any]:
    returns, lengths, per_agent, waits = [], [], [], []
    try:
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed + ep)
            totals = dict.fromkeys(env.possible_agents, 0.0)
            length, wait = 0, []
            while env.agents:
                obs, rewards, _, _, infos = env.step(agent.act(obs, deterministic))
                for name, r in rewards.items():
                    totals[name] += float(r)
                info = next(iter(infos.values()), {})
                if "system_mean_waiting_time" in info:
                    wait.append(float(info["system_mean_waiting_time"]))
                length += 1
            returns.append(sum(totals.values()))
            lengths.append(length)
            per_agent.append(totals)
            if wait:
                waits.append(float(np.mean(wait)))
    finally:
        env.close()
    out = {"episodes": episodes, "return_mean": float(np.mean(returns)),
           "return_std": float(np.std(returns)), "length_mean": float(np.mean(lengths)),
           "length_std": float(np.std(lengths)), "returns": returns, "lengths": lengths,
           "agent_returns": {a: float(np.mean([t[a] for t in per_agent]))
                             for a in env.possible_agents},
           "returns_by_agent": {a: [t[a] for t in per_agent] for a in env.possible_agents}}
    if waits:
        out["mean_waiting_time"] = float(np.mean(waits))
    return out


__all__ = ["Run", "RunConfig", "build_run", "evaluate", "load_run_agent", "load_run_config",
           "resume", "train", "make_agent"]
