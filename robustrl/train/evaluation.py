"""Evaluating an agent: episodes on a fresh evaluation env, clean or perturbed.

Shared by `robustrl eval`, the quickstart and the bench worker, so every one of them scores
an agent the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robustrl.agents.base import Agent
from robustrl.train.pipeline import eval_env
from robustrl.train.run import load_run_agent, load_run_config


def evaluate(agent: Agent, episodes: int = 10, seed: int = 10_000, env: Any = None,
             deterministic: bool = True) -> dict[str, Any]:
    """Run `episodes` episodes; returns mean/std of return and length plus the raw lists.

    `env` defaults to `eval_env(agent)` (the agent's env without a reward wrapper); it is
    closed afterwards. On a PettingZoo ParallelEnv the return is the sum over agents, and the
    result adds each agent's mean return (`agent_returns`), its return per episode
    (`returns_by_agent`) and, when the env reports it (traffic), `mean_waiting_time` (the
    system mean waiting time averaged over steps and episodes).
    """
    env = eval_env(agent) if env is None else env
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


def evaluate_run(run_dir: str | Path, episodes: int, perturb: Sequence[str] = (),
                 seed: int = 10_000) -> dict[str, Any]:
    """Evaluate a run directory's trained agent, clean or under the perturbation specs
    `perturb`; the result of `evaluate` plus run, agent, env, perturbations, the steps trained
    and planned, `finished` and, for an unfinished run (its latest checkpoint), a `note`."""
    agent = load_run_agent(run_dir)
    agent.close()  # it only acts from here on: its evaluation env runs in this process
    planned = load_run_config(run_dir).run.steps
    finished = (Path(run_dir) / "agent.pt").exists()
    result = evaluate(agent, episodes, seed=seed,
                      env=eval_env(agent, perturb, seed=seed))
    result.update(run=str(run_dir), agent=agent.name, env=agent.env_id,
                  perturbations=list(perturb), steps=int(agent.num_steps),
                  planned_steps=planned, finished=finished)
    if not finished:
        result["note"] = (f"{run_dir} is unfinished: evaluated its checkpoint at step "
                          f"{agent.num_steps} of {planned} planned (robustrl train --resume "
                          f"{run_dir} finishes it)")
    return result


__all__ = ["evaluate", "evaluate_run"]
