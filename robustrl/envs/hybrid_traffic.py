"""Hybrid (parameterized-action) traffic-signal control: next green phase + its green time.

`make("hybrid/traffic-<network>")`: at each decision a light picks the next green phase k
(discrete) and how long it stays green, d_k seconds (continuous); only d_k of the chosen phase
matters. Action space `Tuple(Discrete(K), Tuple(Box(min_green, max_green, (1,)) x K))`, by
default d in [5, 50] s (sumo-rl's min_green / max_green), rounded to whole simulated seconds.
Switching to another phase first shows `yellow_time` (2 s) of yellow; choosing the current phase
extends it by d. The next decision comes when that green ends (or the episode does).

Observation, reward function and reward factors are those of `traffic/<network>` (sumo-rl's
default observation; diff-waiting-time reward, which over a variable-length step is the change
of the light's accumulated waiting time over that step). Factors: queue, waiting time and delay
at the decision; throughput and emergency stops counted over the step; phase_switch = 1 when k
was a new phase. `info["green_duration"]` is the green time applied (s), `info["step_seconds"]`
the simulated seconds the step took.

One light gives a Gymnasium env. Several lights give a PettingZoo ParallelEnv that is event
driven: a step runs until the next light's green ends; only the lights whose green ended
(`infos[agent]["acting"]` was True at the previous return) have their action applied, the
others' actions are ignored. An agent's reward is given when its own action's period ends (0
in between), so summing an agent's rewards between its decisions gives that action's reward.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robustrl.core.errors import RobustRLError
from robustrl.envs.traffic_config import TrafficConfig
from robustrl.envs.traffic_core import TrafficCore, open_env
from robustrl.envs.traffic_parallel import TrafficParallelBase, build_adapter


def hybrid_action_space(n_phases: int, low: float, high: float) -> spaces.Tuple:
    """`Tuple(Discrete(K), Tuple(Box(low, high, (1,)) x K))`: phase k, then its green seconds."""
    boxes = tuple(spaces.Box(np.float32(low), np.float32(high), (1,), np.float32)
                  for _ in range(n_phases))
    return spaces.Tuple((spaces.Discrete(n_phases), spaces.Tuple(boxes)))


class _Driver:
    """Applies (phase, duration) actions to lights and advances the simulation between them."""

    def __init__(self, core: TrafficCore):
        self.core = core
        cfg = core.config
        self.low, self.high, self.yellow = float(cfg.min_green), float(cfg.max_green), \
            cfg.yellow_time
        self.action_spaces = {t: hybrid_action_space(int(core.action_spaces[t].n), self.low,
                                                     self.high) for t in core.ts_ids}
        self.due: dict[str, float] = {}
        self.duration: dict[str, float] = {}

    def reset(self) -> None:
        self.due = dict.fromkeys(self.core.ts_ids, self.core.time)
        self.duration = dict.fromkeys(self.core.ts_ids, 0.0)

    def acting(self) -> list[str]:
        now = self.core.time
        return [t for t in self.core.ts_ids if self.due[t] <= now]

    def apply(self, t: str, action: Any) -> None:
        try:
            k, params = action
            k = int(k)
            n = self.action_spaces[t][0].n
            if not 0 <= k < n:
                raise ValueError(f"phase {k} outside Discrete({n})")
            d = float(np.asarray(params[k], dtype=np.float64).ravel()[0])
        except (TypeError, ValueError, IndexError) as e:
            raise RobustRLError(f"hybrid traffic: action for light {t} must be (phase, (d_0, ..."
                                f", d_K-1)) with each d a 1-element array: {e}") from None
        if not np.isfinite(d):
            raise RobustRLError(f"hybrid traffic: duration for light {t} is {d}")
        green = round(min(max(d, self.low), self.high))
        ts = self.core.signals[t]
        seconds = green
        if k != ts.green_phase:
            yellow = ts.all_phases[ts.yellow_dict[(ts.green_phase, k)]].state
            self.core.sumo.trafficlight.setRedYellowGreenState(t, yellow)
            ts.green_phase, ts.is_yellow, ts.time_since_last_phase_change = k, True, 0
            seconds += self.yellow
        else:
            self.core.sumo.trafficlight.setRedYellowGreenState(t, ts.all_phases[k].state)
        self.due[t] = self.core.time + seconds
        self.duration[t] = float(green)

    def advance(self) -> tuple[int, bool]:
        """Run to the next decision of any light; return (seconds run, truncated)."""
        core = self.core
        target = min(min(self.due.values()), core.end_time)
        seconds = max(0, round(target - core.time))
        core.run_seconds(seconds)
        return seconds, core.time >= core.end_time


class HybridTrafficEnv(gym.Env):
    """One light: choose the next green phase and its duration (see the module docstring)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, core: TrafficCore | None = None, **kwargs: Any):
        self.core = core or TrafficCore(TrafficConfig.from_kwargs(kwargs))
        self.sim = self.core.sim  # reachable for perturbations (they look for a SumoEnvironment)
        if len(self.core.ts_ids) != 1:
            raise RobustRLError("hybrid traffic as a Gymnasium env needs a one-light network; "
                                "use single_agent=False for a ParallelEnv")
        self.ts = self.core.ts_ids[0]
        self.driver = _Driver(self.core)
        self.observation_space = self.core.observation_spaces[self.ts]
        self.action_space = self.driver.action_spaces[self.ts]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        obs, info = self.core.reset(seed)
        self.driver.reset()
        return obs[self.ts], info

    def step(self, action: Any):
        if not self.core.running:
            raise RobustRLError("hybrid traffic: call reset() before step() (or after close())")
        self.driver.apply(self.ts, action)
        self.core.reset_counters()
        seconds, truncated = self.driver.advance()
        signal = self.core.signals[self.ts]
        obs = signal.compute_observation()
        reward = float(signal.compute_reward())
        info = self.core.system_info()
        info["reward_factors"] = self.core.factors()[self.ts]
        info["green_duration"] = self.driver.duration[self.ts]
        info["step_seconds"] = seconds
        return obs, reward, False, truncated, info

    def close(self) -> None:
        self.core.close()


class HybridTrafficParallelEnv(TrafficParallelBase):
    """Several lights, event driven: each light decides when its own green ends."""

    metadata: ClassVar[dict[str, Any]] = {"name": "robustrl_hybrid_traffic", "render_modes": [],
                                          "is_parallelizable": True}

    def __init__(self, core: TrafficCore | None = None, **kwargs: Any):
        super().__init__(core, kwargs)
        self.driver = _Driver(self.core)
        self.action_spaces = dict(self.driver.action_spaces)

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.core.reset(seed)
        self.driver.reset()
        self.agents = list(self.possible_agents)
        return obs, {a: {**info, "acting": True} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        if not self.core.running:
            raise RobustRLError("hybrid traffic: call reset() before step() (or after close())")
        for t in self.driver.acting():
            if t in actions:
                self.driver.apply(t, actions[t])
            else:  # an agent that was due but sent nothing keeps its phase for min_green
                ts = self.core.signals[t]
                self.driver.apply(t, (ts.green_phase, [[self.driver.low]] * (ts.green_phase + 1)))
        self.core.reset_counters()
        seconds, truncated = self.driver.advance()
        acting = set(self.driver.acting())
        info = self.core.system_info()
        factors = self.core.factors()
        agents = self.agents
        obs = {a: self.core.signals[a].compute_observation() for a in agents}
        rewards = {a: float(self.core.signals[a].compute_reward()) if a in acting or truncated
                   else 0.0 for a in agents}
        infos = {a: {**info, "reward_factors": factors[a], "acting": a in acting,
                     "green_duration": self.driver.duration[a], "step_seconds": seconds}
                 for a in agents}
        return self._step_result(obs, rewards, infos, truncated)

    def state(self) -> np.ndarray:
        return np.concatenate([self.core.signals[a].compute_observation()
                               for a in self.possible_agents])


def make_hybrid_traffic(**kwargs: Any) -> Any:
    """Entry point of the `hybrid/traffic-*` ids: keyword arguments are `TrafficConfig`'s. In
    this process when its simulation is free, else in a worker (see `robustrl.envs.traffic`)."""
    return open_env(_build, kwargs)


def _build(config: TrafficConfig) -> HybridTrafficEnv | HybridTrafficParallelEnv:
    return build_adapter(config, _one_light, HybridTrafficParallelEnv)


def _one_light(core: TrafficCore) -> HybridTrafficEnv:
    if len(core.ts_ids) > 1:
        core.close()
        raise RobustRLError("hybrid traffic: single_agent=True needs a one-light network (a "
                            "central hybrid controller for several lights is not provided)")
    return HybridTrafficEnv(core)
