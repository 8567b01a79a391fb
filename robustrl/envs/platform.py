"""Platform (Masson, Ranchod & Konidaris 2016, "Reinforcement Learning with Parameterized
Actions"): run, hop and leap along three platforms over two gaps, past two patrolling enemies.

A clean Gymnasium implementation of the published dynamics (the constants and update rules
of the authors' domain, as ported to gym by C. Bester for MP-DQN), with no rendering
dependency. One action = choose run/hop/leap and give that action's parameter:

    Tuple(Discrete(3), Tuple(Box(0, 30, (1,)), Box(0, 720, (1,)), Box(0, 430, (1,))))

run(power) accelerates along the ground for 1 s of simulated time; hop(dx) and leap(dx) jump
(high / long) aiming dx ahead and last until the player lands. The reward of an action is
the distance it covered divided by the level's length, so an episode's return lies in
[0, 1] and is 1 exactly when the end of the level is reached. The episode ends on reaching
the end, falling into a gap or touching an enemy; it is truncated after
`max_episode_steps` actions (200, as in the reference registration).

Observation: the 9 published state features scaled into [0, 1] (player x and speed, the
x and speed of the enemy on the player's platform, current platform widths, gap, platform
start, height step).
The number of simulation frames an action took (the reference's second observation part)
is `info["frames"]`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robustrl.core.errors import RobustRLError
from robustrl.envs.factors import KEY

# Level: three platforms (x, width) at height 0, 40 high, separated by two gaps.
PLATFORM_HEIGHT = 40.0
WIDTHS = (250.0, 275.0, 50.0)
GAPS = (225.0, 235.0)
PLATFORMS = (
    (0.0, WIDTHS[0]),
    (WIDTHS[0] + GAPS[0], WIDTHS[1]),
    (WIDTHS[0] + GAPS[0] + WIDTHS[1] + GAPS[1], WIDTHS[2]),
)
LEVEL_END = PLATFORMS[2][0] + PLATFORMS[2][1]  # = sum of widths and gaps = 1035
# Bodies (player and enemies alike) are 20 x 30 boxes.
BODY_W, BODY_H = 20.0, 30.0
ENEMY_SPEED = 30.0
ENEMY_NOISE = 0.5
PLAYER_NOISE = ENEMY_NOISE
# Motion.
DT = 0.05
MAX_DX = 100.0
MAX_DY = 200.0
MAX_DX_ON = 70.0  # top ground speed
MAX_DDX = (MAX_DX - MAX_DX_ON) / DT
MAX_DDY = MAX_DY / DT
HOP_DY, LEAP_DY = 35.0, 25.0
JUMP_NOISE = 1.0
VELOCITY_DECAY = 0.99
GRAVITY = 9.8
# Actions and their parameter ranges (set empirically by the reference for these constants).
RUN, HOP, LEAP = 0, 1, 2
ACTION_NAMES = ("run", "hop", "leap")
PARAM_LOW = (0.0, 0.0, 0.0)
PARAM_HIGH = (30.0, 720.0, 430.0)
# Observation scaling: feature -> (feature + shift) / scale lies in [0, 1].
_SHIFT = np.array([BODY_W, 0.0, 0.0, ENEMY_SPEED, 0.0, 0.0, 0.0, 0.0, 0.0])
_SCALE = np.array([LEVEL_END + BODY_W, MAX_DX, LEVEL_END, 2 * ENEMY_SPEED,
                   max(WIDTHS), max(WIDTHS), max(GAPS), LEVEL_END, 1.0])


def _clip(x: float, low: float, high: float) -> float:
    return max(low, min(x, high))


class PlatformEnv(gym.Env):
    """The Platform domain; see the module docstring for the task, spaces and reward."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, max_episode_steps: int = 200):
        if max_episode_steps < 1:
            raise RobustRLError(f"hybrid/platform: max_episode_steps must be >= 1, "
                                f"got {max_episode_steps}")
        self.max_episode_steps = max_episode_steps
        self.action_space = spaces.Tuple((
            spaces.Discrete(3),
            spaces.Tuple(tuple(
                spaces.Box(PARAM_LOW[k], PARAM_HIGH[k], (1,), np.float32) for k in range(3))),
        ))
        self.observation_space = spaces.Box(0.0, 1.0, (9,), np.float32)
        self._reset_state()

    # --- state -----------------------------------------------------------------------------

    def _reset_state(self) -> None:
        self.x, self.y = 0.0, PLATFORM_HEIGHT  # player's lower-left corner
        self.vx, self.vy = 0.0, 0.0
        # Enemies start at the right end of the first two platforms, walking left.
        self.enemy_x = [PLATFORMS[i][0] + PLATFORMS[i][1] - BODY_W for i in (0, 1)]
        self.enemy_dx = [-ENEMY_SPEED, -ENEMY_SPEED]
        self.steps = 0

    def _enemy_index(self) -> int:
        """The enemy that matters: the second one once the player is past platform 2's start."""
        return 1 if self.x > PLATFORMS[1][0] else 0

    def _obs(self) -> np.ndarray:
        i = self._enemy_index()
        x = self.x
        if x < WIDTHS[0] + GAPS[0]:
            plat = (WIDTHS[0], WIDTHS[1], GAPS[0], 0.0, 0.0)
        elif x < WIDTHS[0] + GAPS[0] + WIDTHS[1] + GAPS[1]:
            plat = (WIDTHS[1], WIDTHS[2], GAPS[1], WIDTHS[0] + GAPS[0], 0.0)
        else:
            plat = (WIDTHS[2], 0.0, 0.0, PLATFORMS[2][0], 0.0)
        state = np.array((x, self.vx, self.enemy_x[i], self.enemy_dx[i]) + plat)
        return np.clip((state + _SHIFT) / _SCALE, 0.0, 1.0).astype(np.float32)

    # --- player physics --------------------------------------------------------------------

    def _on_platform(self) -> bool:
        if self.y != PLATFORM_HEIGHT:  # standing means exactly on top (decollide sets it)
            return False
        return any(-BODY_W <= self.x - px <= w for px, w in PLATFORMS)

    def _accelerate(self, ax: float, ay: float) -> None:
        self.vx += _clip(ax, -MAX_DDX, MAX_DDX) * DT
        self.vy += _clip(ay, -MAX_DDY, MAX_DDY) * DT
        self.vx -= abs(self.np_random.normal(0.0, PLAYER_NOISE * DT))
        self.vx = _clip(self.vx, 0.0, MAX_DX)
        self.vy = _clip(self.vy, -MAX_DY, MAX_DY)

    def _jump_to(self, dx: float, dy0: float) -> None:
        """Jump with vertical impulse dy0, aiming dx ahead; noise only ever weakens it."""
        airtime = 2.0 * dy0 / GRAVITY + 1.0
        dx0 = _clip(dx / airtime - self.vx, -MAX_DDX, MAX_DY - dy0)
        nx, ny = self.np_random.normal(0.0, JUMP_NOISE, 2)
        self._accelerate((dx0 - abs(nx)) / DT, (dy0 - abs(ny)) / DT)

    def _act(self, action: int, param: float) -> None:
        if not self._on_platform():
            self._accelerate(0.0, -GRAVITY)
        elif action == RUN:
            self._accelerate(param / DT, 0.0)
        elif action == HOP:
            self._jump_to(param, HOP_DY)
        else:
            self._jump_to(param, LEAP_DY)

    def _decollide(self, px: float, width: float) -> None:
        """Push the player out of a platform it overlaps, along the shallower axis."""
        x, y = self.x, self.y
        new_x = px - BODY_W if x < px else px + width if x > px + width - BODY_W else x
        new_y = -BODY_H if y < 0.0 else PLATFORM_HEIGHT if y > PLATFORM_HEIGHT - BODY_H else y
        if new_x == x:
            self.vy, self.y = 0.0, new_y
        elif new_y == y or abs(x - new_x) < abs(y - new_y):
            self.vx, self.x = 0.0, new_x
        else:
            self.vy, self.y = 0.0, new_y

    def _move_enemy(self, i: int) -> None:
        px, width = PLATFORMS[i]
        right = px + width - BODY_W
        x, dx = self.enemy_x[i], self.enemy_dx[i]
        if not px < x < right:
            dx = -dx
        dx = _clip(dx + self.np_random.normal(0.0, ENEMY_NOISE * DT), -ENEMY_SPEED, ENEMY_SPEED)
        self.enemy_x[i] = _clip(x + dx * DT, px, right)
        self.enemy_dx[i] = dx

    def _frame(self, action: int, param: float) -> tuple[bool, bool]:
        """One simulation frame; returns (fell, hit_enemy)."""
        self._act(action, param)
        if self._on_platform() and self.vx > MAX_DX_ON:
            self.vx = MAX_DX_ON
        enemy = self._enemy_index()
        self.x = _clip(self.x + self.vx * DT, 0.0, LEVEL_END)
        self.y += self.vy * DT
        self.vx *= VELOCITY_DECAY
        self._move_enemy(enemy)
        for px, width in PLATFORMS:  # bodies overlapping a platform are pushed out of it
            if px - BODY_W < self.x < px + width and -BODY_H < self.y < PLATFORM_HEIGHT:
                self._decollide(px, width)
                self.vx = 0.0
        fell = self.y < PLATFORM_HEIGHT
        hit = any(ex - BODY_W < self.x < ex + BODY_W
                  and PLATFORM_HEIGHT - BODY_H < self.y < PLATFORM_HEIGHT + BODY_H
                  for ex in self.enemy_x)
        return fell, hit

    # --- Gymnasium API ---------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._reset_state()
        return self._obs(), {}

    def step(self, action: Any):
        k = int(action[0])
        if not 0 <= k < 3:
            raise RobustRLError(f"hybrid/platform: action index must be 0, 1 or 2, got {k}")
        param = _clip(float(action[1][k][0]), PARAM_LOW[k], PARAM_HIGH[k])
        start_x = self.x
        frames, remaining = 0, 1.0
        fell = hit = done = False
        while True:
            fell, hit = self._frame(k, param)
            frames += 1
            done = fell or hit or self.x >= LEVEL_END
            if done:
                break
            if k == RUN:
                remaining -= DT  # runs last 1 s (floating-point countdown, as published)
                if remaining <= 0:
                    break
            elif self._on_platform():  # jumps last until landing
                break
        reached = self.x >= LEVEL_END
        reward = float((LEVEL_END - start_x if reached else self.x - start_x) / LEVEL_END)
        self.steps += 1
        truncated = not done and self.steps >= self.max_episode_steps
        info = {
            "frames": frames,
            "action_name": ACTION_NAMES[k],
            KEY: {"progress": reward, "fell": float(fell and not reached),
                  "enemy_collision": float(hit)},
        }
        return self._obs(), reward, done, truncated, info

    def render(self) -> None:
        """No rendering: the domain is used headless (no pygame dependency)."""
