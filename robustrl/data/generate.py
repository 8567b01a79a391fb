"""PointMaze datasets by the D4RL/Minari recipe, generated locally.

The recipe (D4RL maze2d, re-done by Minari for the gymnasium-robotics PointMaze v3 envs):
1. A waypoint planner: Q-iteration (value iteration, 50 sweeps, gamma 0.99, reward 1 for
   entering the goal cell) on the maze grid gives the next cell from every cell; the path
   from the agent's cell to the goal's cell becomes waypoints at the cell centres, each
   moved by -U(0, 1) * 0.2 per coordinate, except the last, which is the goal itself.
   The table is computed once per goal cell (vectorized over cells and moves) and cached.
2. A PD controller towards the current waypoint: a = clip(10 (waypoint - pos) - 1 vel, -1, 1);
   the next waypoint is taken once within distance 0.1 and (the D4RL condition) speed 0.1.
3. Exploration noise a <- clip(a + N(0, 0.5^2), -1, 1).
4. The env runs as a continuing task: when the goal is reached the env picks a new random
   goal (reset_target=True, Minari's choice) and the dataset marks a timeout there, so each
   episode has one goal; when a goal is not reached within the env's episode length (300
   UMaze, 600 Medium, 800 Large) the episode times out and the env is reset (new start and
   goal). `terminals` stay 0: the maze task never terminates.
5. Reference returns, stored with the dataset: the random policy's and the (noise-free)
   planner-controller's mean episode return on the evaluation env (same env version,
   continuing_task=True, reset_target=False: the return counts the steps spent at the goal,
   D4RL's maze2d convention), over the same seeds.

Reference size: Minari's pointmaze-*-v2 hold 1,000,000 steps; `steps` is a parameter.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robustrl.core.errors import RobustRLError
from robustrl.core.progress import progress
from robustrl.data.dataset import OfflineDataset, save_dataset

EVAL_ENV_KWARGS = {"continuing_task": True, "reset_target": False}
"""The evaluation env: a reached goal stays, so the return counts steps at the goal."""


@dataclass
class GenerateConfig:
    steps: int = 1_000_000
    """Transitions to record (Minari's PointMaze datasets: 1,000,000)."""
    seed: int = 0
    """Seeds the env (starts, goals) and the noise, jitter and reference rollouts."""
    noise: float = 0.5
    """Std of the Gaussian exploration noise added to the controller's action."""
    p_gain: float = 10.0
    """Proportional gain towards the waypoint."""
    d_gain: float = 1.0
    """Damping gain on the velocity (a = p (waypoint - pos) - d vel)."""
    waypoint_distance: float = 0.1
    """A waypoint counts as reached within this distance..."""
    waypoint_speed: float = 0.1
    """...and below this speed (inf: distance only, as Minari's controller)."""
    waypoint_jitter: float = 0.2
    """Waypoints (all but the goal) move by -U(0, 1) * jitter per coordinate."""
    q_iterations: int = 50
    """Q-iteration sweeps of the grid planner."""
    q_gamma: float = 0.99
    """Discount of the grid planner."""
    goal_switch: str = "radius"
    """When a new goal is drawn: "radius" (Minari: on entering the env's 0.45 goal radius,
    the env's reset_target) or "settled" (D4RL maze2d: once the controller has settled on
    the goal, within waypoint_distance and below waypoint_speed)."""
    max_steps_per_goal: int = 0
    """Steps before an unreached goal times out (0: the env's episode length)."""
    ref_episodes: int = 50
    """Episodes per policy (random, planner-controller) for the reference returns."""
    ref_seed: int = 10_000
    """Seed of the first reference episode (training evaluation uses the same seeds)."""


# ----------------------------------------------------------------------------- planner
class GridPlanner:
    """Q-iteration on a maze grid: `next_cell(goal)[cell]` is the best neighbouring cell."""

    MOVES = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)])  # up, down, left, right (row, col)

    def __init__(self, maze_map: list[list[Any]], iterations: int = 50, gamma: float = 0.99):
        self.free = np.array([[cell != 1 for cell in row] for row in maze_map])
        self.rows, self.cols = self.free.shape
        r, c = np.indices(self.free.shape)
        nr, nc = r[..., None] + self.MOVES[:, 0], c[..., None] + self.MOVES[:, 1]
        inside = (nr >= 0) & (nr < self.rows) & (nc >= 0) & (nc < self.cols)
        nr, nc = nr.clip(0, self.rows - 1), nc.clip(0, self.cols - 1)
        valid = inside & self.free[nr, nc]
        here = (r * self.cols + c)[..., None]
        self.next_state = np.where(valid, nr * self.cols + nc, here).reshape(-1, 4)
        self.iterations, self.gamma = iterations, gamma
        self._tables: dict[int, np.ndarray] = {}

    def next_cell(self, goal: tuple[int, int]) -> np.ndarray:
        """Per state (row * cols + col), the state of the next cell on the way to `goal`."""
        g = goal[0] * self.cols + goal[1]
        if g not in self._tables:
            reward = (self.next_state == g).astype(np.float64)
            q = np.zeros_like(reward)
            for _ in range(self.iterations):
                q = reward + self.gamma * q.max(1)[self.next_state]
            self._tables[g] = self.next_state[np.arange(len(q)), q.argmax(1)]
        return self._tables[g]

    def path(self, start: tuple[int, int], goal: tuple[int, int]) -> list[tuple[int, int]]:
        """Cells after `start` up to and including `goal` ([] when already there or stuck)."""
        table, s = self.next_cell(goal), start[0] * self.cols + start[1]
        g, cells = goal[0] * self.cols + goal[1], []
        for _ in range(table.size):
            if s == g:
                return cells
            s = int(table[s])
            cells.append(divmod(s, self.cols))
        return []  # goal unreachable within the table (walled off): head straight for it


# ----------------------------------------------------------------------------- controller
class WaypointController:
    """PD control along the planner's waypoints; replans whenever the goal moves."""

    def __init__(self, maze: Any, cfg: GenerateConfig, rng: np.random.Generator,
                 planner: GridPlanner | None = None):
        self.maze, self.cfg, self.rng = maze, cfg, rng
        self.planner = planner or GridPlanner(maze.maze_map, cfg.q_iterations, cfg.q_gamma)
        self.goal: np.ndarray | None = None
        self.waypoints: list[np.ndarray] = []
        self.index = 0

    def _cell(self, xy: np.ndarray) -> tuple[int, int]:
        r, c = self.maze.cell_xy_to_rowcol(xy)
        return (min(max(int(r), 0), self.planner.rows - 1),
                min(max(int(c), 0), self.planner.cols - 1))

    def replan(self, pos: np.ndarray, goal: np.ndarray) -> None:
        cells = self.planner.path(self._cell(pos), self._cell(goal))
        jitter = self.cfg.waypoint_jitter
        self.waypoints = [self.maze.cell_rowcol_to_xy(np.array(c)) - self.rng.uniform(size=2)
                          * jitter for c in cells[:-1]] + [goal.copy()]
        self.goal, self.index = goal.copy(), 0

    def __call__(self, pos: np.ndarray, vel: np.ndarray, goal: np.ndarray) -> np.ndarray:
        if self.goal is None or np.abs(goal - self.goal).max() > 1e-3:
            self.replan(pos, goal)
        target = self.waypoints[self.index]
        if (self.index < len(self.waypoints) - 1
                and math.hypot(*(target - pos)) < self.cfg.waypoint_distance
                and math.hypot(*vel) < self.cfg.waypoint_speed):
            self.index += 1
            target = self.waypoints[self.index]
        action = self.cfg.p_gain * (target - pos) - self.cfg.d_gain * vel
        return np.clip(action, -1.0, 1.0)


# ----------------------------------------------------------------------------- generation
def _maze_env(env_id: str, **kwargs: Any):
    from robustrl.envs import make

    if not env_id.startswith("maze/PointMaze_"):
        raise RobustRLError(f"dataset generation supports the PointMaze envs "
                            f"(maze/PointMaze_*-v3), not '{env_id}'; AntMaze first needs a "
                            "goal-reaching ant controller")
    return make(env_id, **kwargs)


def generate_dataset(env_id: str, cfg: GenerateConfig | None = None, out: str | Path | None = None,
             show_progress: bool = True) -> OfflineDataset:
    """Generate a PointMaze dataset by the recipe above; write it to `out` (.npz) if given."""
    cfg = cfg or GenerateConfig()
    if cfg.steps < 1:
        raise RobustRLError(f"--steps must be positive, got {cfg.steps}")
    if out is not None and Path(out).suffix != ".npz":
        raise RobustRLError(f"dataset file {out} must end in .npz")
    start = time.perf_counter()
    if cfg.goal_switch not in ("radius", "settled"):
        raise RobustRLError(f"goal_switch must be 'radius' or 'settled', got {cfg.goal_switch!r}")
    settle = cfg.goal_switch == "settled"
    env = _maze_env(env_id, continuing_task=True, reset_target=not settle,
                    max_episode_steps=cfg.steps + 1)
    base = env.unwrapped  # stepped directly: the per-goal time limit is handled here
    goal_limit = cfg.max_steps_per_goal or _episode_length(env_id)
    rng = np.random.default_rng(cfg.seed)
    controller = WaypointController(base.maze, cfg, rng)

    n = cfg.steps
    obs_dim = base.observation_space["observation"].shape[0]
    observations = np.empty((n, obs_dim), np.float32)
    next_observations = np.empty((n, obs_dim), np.float32)
    actions = np.empty((n, 2), np.float32)
    rewards = np.empty(n, np.float32)
    goals = np.empty((n, 2), np.float32)
    terminals = np.zeros(n, bool)
    timeouts = np.zeros(n, bool)
    success = np.zeros(n, bool)
    goals_reached = 0

    obs, _ = base.reset(seed=cfg.seed)
    o = obs["observation"]
    goal_steps = 0
    bar = progress(n, desc=f"generate {env_id}") if show_progress else None
    noise = rng.normal(0.0, cfg.noise, size=(n, 2))
    for t in range(n):
        goal = base.goal.copy()  # the goal this step is rewarded against
        action = np.clip(controller(o[:2], o[2:], goal) + noise[t], -1.0, 1.0)
        obs, reward, terminated, _, info = base.step(action)
        o2 = obs["observation"]
        observations[t], next_observations[t], actions[t] = o, o2, action
        rewards[t], goals[t] = reward, goal
        terminals[t], success[t] = terminated, info["success"]
        goal_steps += 1
        reached = success[t]
        if settle:  # D4RL: the goal is done once the ball has settled on it
            reached = (math.hypot(*(o2[:2] - goal)) < cfg.waypoint_distance
                       and math.hypot(*o2[2:4]) < cfg.waypoint_speed)
            if reached:
                base.goal = base.add_xy_position_noise(base.generate_target_goal())
                base.update_target_site_pos()
        if terminated or reached or goal_steps >= goal_limit:
            timeouts[t] = not terminated
            goals_reached += int(reached)
            goal_steps = 0
            if not reached:  # timed out (or terminated): new start and goal
                obs, _ = base.reset()
                o2 = obs["observation"]
        o = o2
        if bar is not None and (t + 1) % 1000 == 0:
            bar.update(t + 1 - bar.n)
    if bar is not None:
        bar.update(n - bar.n)
        bar.close()
    env.close()
    timeouts[-1] |= not terminals[-1]
    gen_seconds = time.perf_counter() - start

    distance = np.linalg.norm(next_observations[:, :2] - goals, axis=1)
    infos = {"goal": goals, "qpos": observations[:, :2].copy(),
             "qvel": observations[:, 2:4].copy(), "success": success,
             "reward_sparse": (distance <= 0.45).astype(np.float32),
             "reward_dense": np.exp(-distance).astype(np.float32)}
    refs = reference_returns(env_id, cfg)
    metadata = {
        "env_id": env_id, "generator": "robustrl.data.generate (D4RL/Minari PointMaze)",
        "recipe": asdict(cfg), "max_steps_per_goal": goal_limit,
        "reward_type": "dense" if "Dense" in env_id else "sparse", "goal_radius": 0.45,
        "eval_env_kwargs": EVAL_ENV_KWARGS, "num_episodes": int(timeouts.sum() + terminals.sum()),
        "goals_reached": goals_reached, "generation_seconds": round(gen_seconds, 2),
        **refs, "versions": _versions()}
    data = OfflineDataset(observations, actions, rewards, next_observations, terminals,
                          timeouts, infos, metadata)
    if out is not None:
        save_dataset(out, data)
    return data


def _episode_length(env_id: str) -> int:
    import gymnasium as gym

    return int(gym.spec(env_id.split("/", 1)[1]).max_episode_steps)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("robustrl", "gymnasium", "gymnasium-robotics", "mujoco"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


# ----------------------------------------------------------------------------- references
def rollout_returns(env: Any, policy: Callable[[dict[str, np.ndarray]], np.ndarray],
                    episodes: int, seed: int) -> dict[str, list[float]]:
    """Episode returns (and whether the goal was ever reached) of `policy` on a maze env."""
    returns, reached = [], []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        if hasattr(policy, "reset"):  # stateful policies (an intent replanned every k steps)
            policy.reset()
        done, total, hit = False, 0.0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(policy(obs))
            total += float(reward)
            hit |= bool(info.get("success", False))
            done = terminated or truncated
        returns.append(total)
        reached.append(float(hit))
    return {"returns": returns, "success": reached}


def planner_policy(env: Any, cfg: GenerateConfig | None = None,
                   seed: int = 0) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """The noise-free planner-controller as a policy on Dict observations."""
    controller = WaypointController(env.unwrapped.maze, cfg or GenerateConfig(),
                                    np.random.default_rng(seed))

    def act(obs: dict[str, np.ndarray]) -> np.ndarray:
        o = obs["observation"]
        return controller(o[:2], o[2:], obs["desired_goal"]).astype(np.float32)

    return act


def random_policy(env: Any, seed: int = 0) -> Callable[[Any], np.ndarray]:
    env.action_space.seed(seed)
    return lambda obs: env.action_space.sample()


def reference_returns(env_id: str, cfg: GenerateConfig | None = None) -> dict[str, Any]:
    """Random and planner-controller mean returns on the evaluation env, same seeds."""
    cfg = cfg or GenerateConfig()
    env = _maze_env(env_id, **EVAL_ENV_KWARGS)
    try:
        rand = rollout_returns(env, random_policy(env, cfg.seed), cfg.ref_episodes, cfg.ref_seed)
        plan = rollout_returns(env, planner_policy(env, cfg, cfg.seed), cfg.ref_episodes,
                               cfg.ref_seed)
    finally:
        env.close()
    return {"ref_min_score": float(np.mean(rand["returns"])),
            "ref_max_score": float(np.mean(plan["returns"])),
            "ref_random_std": float(np.std(rand["returns"])),
            "ref_planner_std": float(np.std(plan["returns"])),
            "ref_planner_success": float(np.mean(plan["success"])),
            "ref_random_success": float(np.mean(rand["success"])),
            "ref_episodes": cfg.ref_episodes, "ref_seed": cfg.ref_seed,
            "ref_env_kwargs": EVAL_ENV_KWARGS}
