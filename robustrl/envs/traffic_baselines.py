"""Baseline traffic-signal controllers (fixed-time, max-pressure) and their evaluation.

These are the references HERON, ERNIE and Hybrid SAC results are compared against. A controller
is made for one env and called like a policy, `controller.act(obs)` (or `controller(obs)`), and
returns the action in the env's own format: an int for one light, an array for the central
controller (MultiDiscrete), a dict {light: phase} for the ParallelEnv. Max-pressure reads the
running simulation, so it must live in the process that runs the env (`evaluate_controller(...,
in_subprocess=True)` runs the whole evaluation in a child process).

    >>> from robustrl.envs.traffic_baselines import evaluate_controller
    >>> evaluate_controller("traffic/2x2grid", "max-pressure", num_seconds=3600)
    {'mean_waiting_time': ..., 'throughput': ..., 'mean_return': ..., 'episodes': 1}
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from robustrl.core.errors import RobustRLError
from robustrl.envs.registry import make
from robustrl.envs.worker import find_worker


def traffic_core(env: Any) -> Any:
    """The `TrafficCore` behind a traffic env (through wrappers), or a one-line error."""
    core = getattr(getattr(env, "unwrapped", env), "core", None)
    if core is not None and hasattr(core, "phase_pressures"):
        return core
    if find_worker(env) is not None:
        raise RobustRLError("traffic controllers need the simulation in this process and this "
                            "env runs in a worker (another traffic env was alive when it was "
                            "made); close that one first, or use evaluate_controller(..., "
                            "in_subprocess=True)")
    raise RobustRLError("traffic controllers need an env made by robustrl.envs.make('traffic/"
                        "...')")


class _Controller:
    """Shared plumbing: which lights, and how to pack per-light phases into the env's action."""

    def __init__(self, env: Any):
        self.env = env
        self.core = traffic_core(env)
        self.ts_ids: list[str] = list(self.core.ts_ids)
        unwrapped = getattr(env, "unwrapped", env)
        self.parallel = hasattr(unwrapped, "possible_agents")
        self.central = bool(getattr(unwrapped, "central", False))

    def phases(self) -> dict[str, int]:
        raise NotImplementedError

    def reset(self) -> None:
        """Call at the start of every episode."""

    def act(self, obs: Any = None) -> Any:
        phases = self.phases()
        if self.parallel:
            agents = getattr(self.env, "agents", None) or self.ts_ids
            return {t: phases[t] for t in agents}
        if self.central:
            return np.array([phases[t] for t in self.ts_ids], dtype=np.int64)
        return phases[self.ts_ids[0]]

    __call__ = act


class FixedTimeController(_Controller):
    """Cycles through each light's green phases, `green_time` seconds each (rounded to whole
    decision steps; the yellow after a switch is part of the next phase's time)."""

    def __init__(self, env: Any, green_time: float = 30.0):
        super().__init__(env)
        if green_time <= 0:
            raise RobustRLError(f"fixed-time: green_time must be > 0, got {green_time}")
        self.steps_per_phase = max(1, round(green_time / self.core.config.delta_time))
        self.n_phases = {t: int(self.core.action_spaces[t].n) for t in self.ts_ids}
        self.t = 0

    def reset(self) -> None:
        self.t = 0

    def phases(self) -> dict[str, int]:
        k = self.t // self.steps_per_phase
        self.t += 1
        return {t: k % n for t, n in self.n_phases.items()}


class MaxPressureController(_Controller):
    """Max-pressure (Varaiya 2013): each light picks the green phase whose movements have the
    largest (vehicles upstream - vehicles downstream); ties keep the current phase. sumo-rl
    still enforces min_green and yellow."""

    def phases(self) -> dict[str, int]:
        out = {}
        for t in self.ts_ids:
            pressure = self.core.phase_pressures(t)
            current = self.core.signals[t].green_phase
            best = int(np.argmax(pressure))
            out[t] = current if pressure[current] >= pressure[best] else best
        return out


CONTROLLERS: dict[str, type[_Controller]] = {
    "fixed-time": FixedTimeController,
    "max-pressure": MaxPressureController,
}


def make_controller(name: str, env: Any, **kwargs: Any) -> _Controller:
    """A baseline controller by name ('fixed-time', 'max-pressure') for `env`."""
    if name not in CONTROLLERS:
        raise RobustRLError(f"unknown traffic controller '{name}'; choose one of "
                            f"{sorted(CONTROLLERS)}")
    return CONTROLLERS[name](env, **kwargs)


def evaluate_controller(env_id: str, controller: str | Callable[..., Any] = "max-pressure", *,
                        episodes: int = 1, seed: int = 0,
                        controller_kwargs: dict[str, Any] | None = None,
                        in_subprocess: bool = False, **env_kwargs: Any) -> dict[str, float]:
    """Run `controller` on `env_id` for `episodes` episodes (seeds seed, seed+1, ...).

    `controller`: a name from `CONTROLLERS`, or a callable `f(env) -> policy` whose result maps
    an observation to an action (a class such as `MaxPressureController` works). Returns
    `mean_waiting_time` (s, sumo-rl's system mean waiting time averaged over decision steps),
    `throughput` (vehicles that completed their trip per episode), `mean_queue` (halting
    vehicles on controlled approaches per step), `mean_return` (summed over lights) and
    `episodes`. `in_subprocess=True` runs it in a fresh process, e.g. to evaluate while a
    training run holds this process's simulation.
    """
    if in_subprocess:
        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            return pool.submit(evaluate_controller, env_id, controller, episodes=episodes,
                               seed=seed, controller_kwargs=controller_kwargs,
                               **env_kwargs).result()
    if episodes < 1:
        raise RobustRLError(f"episodes must be >= 1, got {episodes}")
    env = make(env_id, **env_kwargs)
    try:
        if isinstance(controller, str):
            policy = make_controller(controller, env, **(controller_kwargs or {}))
        else:
            policy = controller(env, **(controller_kwargs or {}))
        waits, arrived, queues, returns = [], [], [], []
        for episode in range(episodes):
            wait, queue, ret, steps = 0.0, 0.0, 0.0, 0
            obs, info = env.reset(seed=seed + episode)
            if hasattr(policy, "reset"):
                policy.reset()
            parallel = isinstance(obs, dict) and hasattr(env, "possible_agents")
            done = False
            while not done:
                action = policy(obs)
                if parallel:
                    obs, rewards, _, _, infos = env.step(action)
                    info = next(iter(infos.values()))
                    ret += sum(rewards.values())
                    queue += sum(i["reward_factors"]["queue_length"] for i in infos.values())
                    done = not env.agents
                else:
                    obs, reward, terminated, truncated, info = env.step(action)
                    ret += reward
                    queue += info["reward_factors"]["queue_length"]
                    done = terminated or truncated
                wait += float(info.get("system_mean_waiting_time", np.nan))
                steps += 1
            waits.append(wait / steps)
            queues.append(queue / steps)
            arrived.append(float(info["system_arrived"]))
            returns.append(ret)
        return {"mean_waiting_time": float(np.mean(waits)), "throughput": float(np.mean(arrived)),
                "mean_queue": float(np.mean(queues)), "mean_return": float(np.mean(returns)),
                "episodes": episodes}
    finally:
        env.close()
