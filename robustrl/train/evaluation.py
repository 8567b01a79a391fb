"""Evaluating an agent: episodes on a fresh evaluation env, clean or perturbed.

Shared by `robustrl eval`, the quickstart, evaluation during training and the bench worker, so
every one of them scores an agent the same way (`run_eval` evaluates a run directory or an SB3
model file).

Batched evaluation: given an env factory, `evaluate` plays up to `EVAL_WIDTH` episodes at once
on separate env copies (each wrapped in its own perturbations), with one policy call per step
for all of them. Every episode keeps its seed (`seed + index`), and the policy is always called
on at least `MIN_ROWS` rows (MKL computes 1-7 row products with other kernels whose last bits
differ), so each episode's return equals the one-at-a-time path's exactly. It falls back to one
episode at a time (`batchable`) for multi-agent envs, traffic (one libsumo simulation per
process), sampled actions, agents whose `act` is not row-wise (`Agent.batched_act`) and
perturbations bound to one env or to other agents (adversaries, PGD, PRA).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from robustrl.agents.base import Agent
from robustrl.core.errors import RobustRLError
from robustrl.core.guards import check_finite
from robustrl.perturb import parse
from robustrl.train.pipeline import eval_env

EVAL_WIDTH = 32
"""At most this many episodes run at once in the batched path."""
MIN_ROWS = 8
"""The policy is always called on at least this many rows (padded with copies of the first)."""
BATCHABLE_KINDS = frozenset({"obs-gaussian", "obs-uniform", "obs-shift", "act-gaussian",
                             "act-replace", "reward-gaussian", "dyn-mass", "dyn-friction",
                             "dyn-gravity", "dyn-gain", "dyn-damping"})
"""Perturbations whose state lives in their own env copy and depends on nothing but its seed."""


def batchable(agent: Agent, perturb: Sequence[str] = (), deterministic: bool = True) -> bool:
    """Whether `agent` can be evaluated under `perturb` by the batched path (module docstring)."""
    return (deterministic and getattr(type(agent), "batched_act", False) and agent.n_agents == 1
            and not str(agent.env_id or "").startswith("traffic/")
            and all(parse(s).kind in BATCHABLE_KINDS for s in perturb))


def act_rows(agent: Agent, obs: np.ndarray) -> np.ndarray:
    """The deterministic actions for a stack of observations, one policy call padded to
    `MIN_ROWS` rows so a row's action does not depend on how many rows came with it."""
    n = len(obs)
    if n < MIN_ROWS:
        obs = np.concatenate([obs, np.repeat(obs[:1], MIN_ROWS - n, 0)])
    return agent.act(obs, True)[:n]


def evaluate(agent: Agent, episodes: int = 10, seed: int = 10_000, env: Any = None,
             deterministic: bool = True) -> dict[str, Any]:
    """Run `episodes` episodes; returns mean/std of return and length plus the raw lists.

    `env` defaults to `eval_env(agent)` (the agent's env without a reward wrapper); it is
    closed afterwards. A zero-argument factory instead of an env (and `env=None`) lets episodes
    run batched when `batchable` allows (the caller checks its perturbations); the result is
    the same. On a PettingZoo ParallelEnv the return is the sum over agents, and the
    result adds each agent's mean return (`agent_returns`), its return per episode
    (`returns_by_agent`) and, when the env reports it (traffic), `mean_waiting_time` (the
    system mean waiting time averaged over steps and episodes).
    """
    if episodes < 1 or seed < 0:
        if env is not None and not _is_factory(env):
            env.close()
        raise RobustRLError(f"evaluation needs episodes >= 1 and seed >= 0, got episodes "
                            f"{episodes} and seed {seed}")
    factory: Callable[[], Any] | None = None
    if env is None or _is_factory(env):
        factory = (lambda: eval_env(agent)) if env is None else env
        env = factory()
    if hasattr(env, "possible_agents"):
        return _finite(_evaluate_parallel(agent, env, episodes, seed, deterministic))
    row_wise = deterministic and getattr(type(agent), "batched_act", False)
    if factory is not None and episodes > 1 and batchable(agent, (), deterministic):
        returns, lengths = _evaluate_batched(agent, env, factory, episodes, seed)
        return _summary(episodes, returns, lengths)
    returns, lengths = [], []
    try:
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed + ep)
            done, total, length = False, 0.0, 0
            while not done:
                action = (act_rows(agent, np.asarray(obs)[None])[0] if row_wise
                          else agent.act(obs, deterministic))
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                length += 1
                done = terminated or truncated
            returns.append(total)
            lengths.append(length)
    finally:
        env.close()
    return _summary(episodes, returns, lengths)


def _is_factory(env: Any) -> bool:
    return callable(env) and not hasattr(env, "step")


def _summary(episodes: int, returns: list[float], lengths: list[int]) -> dict[str, Any]:
    return _finite({"episodes": episodes, "return_mean": float(np.mean(returns)),
                    "return_std": float(np.std(returns)), "length_mean": float(np.mean(lengths)),
                    "length_std": float(np.std(lengths)), "returns": returns, "lengths": lengths})


def _evaluate_batched(agent: Agent, first: Any, factory: Callable[[], Any], episodes: int,
                      seed: int) -> tuple[list[float], list[int]]:
    """Episodes `seed + i` on up to `EVAL_WIDTH` env copies at once; a copy whose episode
    ends starts the next unplayed one, so the seed of every episode is fixed by its index."""
    envs = [first]
    returns, lengths = [0.0] * episodes, [0] * episodes
    try:
        envs += [factory() for _ in range(min(episodes, EVAL_WIDTH) - 1)]
        playing: list[int | None] = list(range(len(envs)))  # episode index of each copy
        obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
        upcoming = len(envs)
        while True:
            live = [i for i, ep in enumerate(playing) if ep is not None]
            if not live:
                return returns, lengths
            actions = act_rows(agent, np.stack([np.asarray(obs[i]) for i in live]))
            for i, action in zip(live, actions, strict=True):
                ep = playing[i]
                assert ep is not None
                obs[i], reward, terminated, truncated, _ = envs[i].step(action)
                returns[ep] += float(reward)
                lengths[ep] += 1
                if terminated or truncated:
                    playing[i] = upcoming if upcoming < episodes else None
                    if upcoming < episodes:
                        obs[i] = envs[i].reset(seed=seed + upcoming)[0]
                        upcoming += 1
    finally:
        for env in envs:
            env.close()


def _finite(result: dict[str, Any]) -> dict[str, Any]:
    """`result`, unless its mean return is NaN/Inf: a score made of NaN is refused, not shown."""
    check_finite(result["return_mean"], "evaluation return (the env reward or the agent's "
                 "actions are NaN or Inf)", way_out="fix the env, or retrain if the agent "
                 "diverged")
    return result


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


__all__ = ["evaluate"]
