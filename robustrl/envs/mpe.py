"""Particle worlds (mpe2) as PettingZoo ParallelEnvs with named reward factors.

`make_mpe("simple_spread_v3", N=3, continuous_actions=True)` builds mpe2's scenario as a
parallel env (`MPEParallelEnv`: the same steps as mpe2's own parallel env, without its
AEC-to-parallel conversion) and adds, in every agent's step info, `reward_factors`: the terms
that scenario's reward is built from, recomputed from the world state after the step (a few
float operations per agent).

Factors are magnitudes seen from the reporting agent's side, each with a fixed direction
(`envs/mpe.toml`): e.g. in `simple_adversary` every agent reports `goal_distance` (its own
team's distance to the goal, lower is better) and `opponent_goal_distance` (the other
team's, higher is better). A role-specific term that does not exist for an agent (a
predator being `caught`) is reported as 0.0, so all agents share one key set.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable
from typing import Any

import mpe2  # noqa: F401  (fail here, at import, when mpe2 is missing: the registry says what to install)
import numpy as np
from pettingzoo import ParallelEnv

from robustrl.core.errors import RobustRLError

KEY = "reward_factors"
Factors = dict[str, dict[str, float]]
FactorFn = Callable[[Any, Any, dict[str, float]], Factors]
Point = list[float]


def _xy(entity: Any) -> Point:
    return entity.state.p_pos.tolist()


_dist = math.dist  # Euclidean distance of two points, in C


def _sq_dist(p: Point, q: Point) -> float:
    dx, dy = p[0] - q[0], p[1] - q[1]
    return dx * dx + dy * dy


def _touching(a: Any, pa: Point, b: Any, pb: Point) -> bool:
    """mpe2's `is_collision`: centres closer than the sum of the radii."""
    return _dist(pa, pb) < a.size + b.size


def _out_of_bounds(p: Point) -> float:
    """The boundary penalty of simple_tag / simple_world_comm (per unit weight)."""
    total = 0.0
    for x in (abs(p[0]), abs(p[1])):
        if x < 0.9:
            continue
        total += (x - 0.9) * 10 if x < 1.0 else min(math.exp(2 * x - 2), 10.0)
    return total


# --- one function per scenario: (world after the step, scenario, rewards)
#     -> {agent: {factor: value}}


def _simple(world: Any, scenario: Any, rewards: dict[str, float]) -> Factors:
    goal = _xy(world.landmarks[0])
    return {a.name: {"landmark_sq_distance": _sq_dist(_xy(a), goal)} for a in world.agents}


def _simple_adversary(world: Any, scenario: Any, rewards: dict[str, float]) -> Factors:
    goal = _xy(world.agents[0].goal_a)
    good = [_dist(_xy(a), goal) for a in world.agents if not a.adversary]
    adv = [_dist(_xy(a), goal) for a in world.agents if a.adversary]
    good_team, adv_team = min(good), sum(adv)
    out = {}
    for a in world.agents:
        if a.adversary:
            own = _dist(_xy(a), goal)
            out[a.name] = {"goal_distance": own, "opponent_goal_distance": good_team}
        else:
            out[a.name] = {"goal_distance": good_team, "opponent_goal_distance": adv_team}
    return out


def _simple_crypto(world: Any, scenario: Any, rewards: dict[str, float]) -> Factors:
    goal = world.agents[0].goal_a.color

    def error(a: Any) -> float:
        c = a.state.c
        return 0.0 if not c.any() else float(((c - goal) ** 2).sum())

    listeners = [a for a in world.agents if not a.adversary and not a.speaker]
    eves = [a for a in world.agents if a.adversary]
    bob_error = sum(error(a) for a in listeners)
    eve_error = sum(error(a) for a in eves)
    out = {}
    for a in world.agents:
        if a.adversary:
            out[a.name] = {"decode_error": error(a), "opponent_decode_error": bob_error}
        else:
            out[a.name] = {"decode_error": bob_error, "opponent_decode_error": eve_error}
    return out


def _simple_push(world: Any, scenario: Any, rewards: dict[str, float]) -> Factors:
    goal = _xy(world.agents[0].goal_a)
    dist = {a.name: _dist(_xy(a), goal) for a in world.agents}
    good = min(dist[a.name] for a in world.agents if not a.adversary)
    adv = min(dist[a.name] for a in world.agents if a.adversary)
    return {
        a.name: {"goal_distance": dist[a.name],
                 "opponent_goal_distance": good if a.adversary else adv}
        for a in world.agents
    }


def _simple_reference(world: Any, scenario: Any, rewards: dict[str, float]) -> Factors:
    own = {a.name: _dist(_xy(a.goal_a), _xy(a.goal_b)) for a in world.agents}
    team = sum(own.values()) / len(own)
    return {n: {"partner_goal_distance": d, "team_goal_distance": team} for n, d in own.items()}


def _simple_speaker_listener(world: Any, scenario: Any, rewards: dict[str, float]) -> Factors:
    speaker = world.agents[0]
    d2 = _sq_dist(_xy(speaker.goal_a), _xy(speaker.goal_b))
    return {a.name: {"listener_goal_sq_distance": d2} for a in world.agents}


def _simple_spread(world: Any, scenario: Any, rewards: dict[str, float]) -> Factors:
    agents = world.agents
    pos = [_xy(a) for a in agents]
    landmarks = [_xy(lm) for lm in world.landmarks]
    coverage = sum(min([_dist(p, q) for p in pos]) for q in landmarks)
    hits = [0.0] * len(agents)
    for i, a in enumerate(agents):  # each pair once; a contact counts for each colliding side
        for j in range(i + 1, len(agents)):
            b = agents[j]
            if _dist(pos[i], pos[j]) < a.size + b.size:
                hits[i] += a.collide
                hits[j] += b.collide
    return {a.name: {"coverage_distance": coverage, "collisions": hits[i]}
            for i, a in enumerate(agents)}


def _predator_prey(world: Any) -> tuple[list[Any], list[Point], dict[int, int], int]:
    """Positions, how many predators touch each prey (by index), and all contacts."""
    agents = world.agents
    pos = [_xy(a) for a in agents]
    prey = [i for i, a in enumerate(agents) if not a.adversary]
    preds = [i for i, a in enumerate(agents) if a.adversary]
    caught = {i: sum(1 for j in preds if _touching(agents[i], pos[i], agents[j], pos[j]))
              for i in prey}
    return agents, pos, caught, sum(caught.values())


def _simple_tag(world: Any, scenario: Any, rewards: dict[str, float]) -> Factors:
    agents, pos, caught, contacts = _predator_prey(world)
    out = {}
    for i, a in enumerate(agents):
        if a.adversary:
            out[a.name] = {"catches": float(contacts), "caught": 0.0, "out_of_bounds": 0.0}
        else:
            out[a.name] = {"catches": 0.0, "caught": float(caught[i]),
                           "out_of_bounds": _out_of_bounds(pos[i])}
    return out


def _simple_world_comm(world: Any, scenario: Any, rewards: dict[str, float]) -> Factors:
    agents, pos, caught, contacts = _predator_prey(world)
    food = [(f, _xy(f)) for f in world.food]
    prey_pos = [pos[i] for i in caught]
    out = {}
    for i, a in enumerate(agents):
        f = {"catches": 0.0, "caught": 0.0, "out_of_bounds": 0.0, "food_eaten": 0.0,
             "food_distance": 0.0, "prey_distance": 0.0}
        if a.adversary:
            f["catches"] = float(contacts)
            f["prey_distance"] = min(_dist(pos[i], p) for p in prey_pos)
        else:
            f["caught"] = float(caught[i])
            f["out_of_bounds"] = _out_of_bounds(pos[i])
            f["food_eaten"] = float(sum(1 for fd, fp in food if _touching(a, pos[i], fd, fp)))
            f["food_distance"] = min(_dist(pos[i], fp) for _, fp in food)
        out[a.name] = f
    return out


def _formation(world: Any, scenario: Any, rewards: dict[str, float]) -> Factors:
    # The reward is exactly -(mean matched distance to the target shape, clipped to [0, 2])
    # for every agent (Hungarian matching inside mpe2); reading it back avoids a second solve.
    return {a.name: {"formation_error": -float(rewards[a.name])} for a in world.agents}


def _collect_treasure(world: Any, scenario: Any, rewards: dict[str, float]) -> Factors:
    # Pickups and deliveries happen (and are undone) inside mpe2's post-step hook; the scenario
    # keeps this step's +5 bonuses, which are exactly the reward terms.
    collected = (scenario._cached_global_collecting or 0.0) / 5.0
    deposited = (scenario._cached_global_deposit or 0.0) / 5.0
    agents = world.agents
    pos = [_xy(a) for a in agents]
    collectors = [i for i, a in enumerate(agents) if a.collector]
    live = [_xy(lm) for lm in world.landmarks if lm.alive]
    out = {}
    for i, a in enumerate(agents):
        hits, target = 0.0, 0.0
        if a.collector:
            hits = float(sum(1 for j in collectors
                             if j != i and _touching(a, pos[i], agents[j], pos[j])))
            if a.holding is None:
                target = min((_dist(pos[i], p) for p in live), default=0.0)
            else:
                target = min((_dist(pos[i], pos[j]) for j, d in enumerate(agents)
                              if not d.collector and d.d_i == a.holding), default=0.0)
        else:
            carrying = [pos[j] for j in collectors if agents[j].holding == a.d_i]
            if carrying:
                target = min(_dist(pos[i], p) for p in carrying)
            elif collectors:
                cx = sum(pos[j][0] for j in collectors) / len(collectors)
                cy = sum(pos[j][1] for j in collectors) / len(collectors)
                target = _dist(pos[i], [cx, cy])
        out[a.name] = {"treasures_collected": collected, "treasures_deposited": deposited,
                       "collisions": hits, "target_distance": target}
    return out


FACTOR_FNS: dict[str, FactorFn] = {
    "simple": _simple,
    "simple_adversary": _simple_adversary,
    "simple_crypto": _simple_crypto,
    "simple_push": _simple_push,
    "simple_reference": _simple_reference,
    "simple_speaker_listener": _simple_speaker_listener,
    "simple_spread": _simple_spread,
    "simple_tag": _simple_tag,
    "simple_world_comm": _simple_world_comm,
    "simple_formation": _formation,
    "simple_line": _formation,
    "collect_treasure": _collect_treasure,
}


class MPEParallelEnv(ParallelEnv):
    """An mpe2 scenario as a PettingZoo ParallelEnv, plus `reward_factors` in each agent's info.

    mpe2's own parallel env is its AEC env behind PettingZoo's `aec_to_parallel`: per joint
    step that walks three wrappers' `__getattr__` chains for every agent and computes every
    observation twice (in `last()`, then again). This class drives the same core (mpe2's
    `SimpleEnv`: its `reset`, `_execute_world_step`, `observe`, `state`, `render`) once per
    joint step, with the action checks of mpe2's wrappers (discrete actions must lie in the
    space, continuous ones are clipped to it); `tests/envs/test_mpe.py` checks it equals mpe2's
    parallel env step by step on every scenario. Infos are fresh dicts each step (mpe2 reuses
    its own), so a stored info never changes.
    """

    def __init__(self, raw: Any, factor_fn: FactorFn, env_id: str):
        self.raw = raw
        self.world = raw.world
        self.scenario = raw.scenario
        self.factor_fn = factor_fn
        self.env_id = env_id
        self.metadata = raw.metadata
        self.render_mode = raw.render_mode
        self.possible_agents = list(raw.possible_agents)
        self.observation_spaces = raw.observation_spaces
        self.action_spaces = raw.action_spaces
        self.agents: list[str] = []

    @property
    def unwrapped(self) -> Any:
        return self.raw

    def observation_space(self, agent: str) -> Any:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> Any:
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None):
        self.raw.reset(seed=seed, options=options)
        self.agents = list(self.possible_agents)
        obs = {a: self.raw.observe(a) for a in self.agents}
        return obs, {a: dict(self.raw.infos[a]) for a in self.agents}

    def _action(self, agent: str, action: Any) -> Any:
        space = self.action_spaces[agent]
        if self.raw.continuous_actions:
            if np.shape(action) != space.shape or np.isnan(action).any():
                raise RobustRLError(f"{self.env_id}: agent {agent}'s action {action!r} does "
                                    f"not fit its action space {space} (shape, or NaN)")
            return np.clip(action, space.low, space.high)
        if not space.contains(action):
            raise RobustRLError(f"{self.env_id}: agent {agent}'s action {action!r} is not in "
                                f"its action space {space}")
        return action

    def step(self, actions: dict[str, Any]):
        raw, agents = self.raw, self.agents
        if not agents:
            raise RobustRLError(f"{self.env_id}: step() with no live agents; call reset() first "
                                "(and again after an episode ends)")
        missing = [a for a in agents if a not in actions]
        if missing:
            raise RobustRLError(f"{self.env_id}: no action for agent(s) {missing}; every live "
                                "agent acts at every step")
        for agent in agents:
            raw.current_actions[raw._index_map[agent]] = self._action(agent, actions[agent])
        raw._execute_world_step()
        raw.steps += 1
        truncated = raw.steps >= raw.max_cycles
        terminated = not truncated and bool(raw.scenario.is_terminal(raw.world))
        obs = {a: raw.observe(a) for a in agents}
        rewards = {a: raw.rewards[a] for a in agents}
        factors = self.factor_fn(self.world, self.scenario, rewards)
        infos = {a: {**raw.infos[a], KEY: factors[a]} for a in agents}
        if terminated or truncated:
            self.agents = []
        if self.render_mode == "human":
            raw.render()
        return (obs, rewards, dict.fromkeys(agents, terminated),
                dict.fromkeys(agents, truncated), infos)

    def state(self) -> np.ndarray:
        return self.raw.state()

    def render(self) -> Any:
        return self.raw.render()

    def close(self) -> None:
        self.raw.close()


def _base_name(scenario: str) -> str:
    head, _, version = scenario.rpartition("_v")
    return head if head and version.isdigit() else scenario


def make_mpe(scenario: str, continuous_actions: bool = False, **kwargs: Any) -> ParallelEnv:
    """Make mpe2 scenario `scenario` (a module of mpe2, e.g. "simple_spread_v3").

    `continuous_actions` switches Discrete(5) moves for Box(0, 1, (5,)) forces; other keyword
    arguments (N, max_cycles, local_ratio, num_good, ...) go to the scenario unchanged.
    """
    name = _base_name(scenario)
    if name not in FACTOR_FNS:
        raise RobustRLError(f"unknown mpe2 scenario '{scenario}'; known: {sorted(FACTOR_FNS)}")
    module = importlib.import_module(f"mpe2.{scenario}")
    params = inspect.signature(module.raw_env.__init__).parameters
    unknown = sorted(k for k in kwargs if k not in params)
    if unknown:
        valid = ", ".join(p for p in params if p not in ("self", "render_mode"))
        raise RobustRLError(f"mpe/{name}: invalid argument(s) {unknown}; valid: {valid}")
    try:
        raw = module.raw_env(continuous_actions=continuous_actions, **kwargs)
    except (AssertionError, ValueError, TypeError) as e:
        raise RobustRLError(f"mpe/{name}: invalid arguments {kwargs}: {e}") from None
    return MPEParallelEnv(raw, FACTOR_FNS[name], f"mpe/{name}")
