"""What the traffic adapters of `traffic/*` and `hybrid/traffic-*` share: which adapter a
config gets (`build_adapter`) and the PettingZoo side (`TrafficParallelBase`: one agent per
light of a `TrafficCore`, the per-agent spaces, how an episode ends (every light is cut off
together at the time limit; none terminates), render and close)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gymnasium import spaces
from pettingzoo import ParallelEnv

from robustrl.envs.traffic_config import TrafficConfig
from robustrl.envs.traffic_core import TrafficCore


class TrafficParallelBase(ParallelEnv):
    """One agent per traffic light; a subclass sets `action_spaces` and gives reset, step and
    state."""

    def __init__(self, core: TrafficCore | None, kwargs: dict[str, Any]):
        self.core = core or TrafficCore(TrafficConfig.from_kwargs(kwargs))
        self.sim = self.core.sim  # reachable for perturbations (they look for a SumoEnvironment)
        self.possible_agents = list(self.core.ts_ids)
        self.agents: list[str] = []
        self.observation_spaces = dict(self.core.observation_spaces)
        self.action_spaces: dict[str, spaces.Space] = {}
        self.render_mode = None

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def _step_result(self, obs: dict[str, Any], rewards: dict[str, float],
                     infos: dict[str, dict[str, Any]], truncated: bool) -> tuple[Any, ...]:
        """ParallelEnv.step's five dicts; at the time limit every agent leaves together."""
        agents = self.agents
        terminations = dict.fromkeys(agents, False)
        truncations = dict.fromkeys(agents, truncated)
        if truncated:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def render(self) -> None:
        return None

    def close(self) -> None:
        self.core.close()


def build_adapter(config: TrafficConfig, single_env: Callable[[TrafficCore], Any],
                  parallel_env: Callable[[TrafficCore], Any]) -> Any:
    """The simulation of `config` behind its adapter: `single_env` (Gymnasium) for one light or
    single_agent=True, `parallel_env` (PettingZoo) for several lights or single_agent=False."""
    core = TrafficCore(config)
    single = config.single_agent
    if single is None:
        single = len(core.ts_ids) == 1
    return single_env(core) if single else parallel_env(core)
