"""Robot-soccer Goal (Masson, Ranchod & Konidaris 2016, "Reinforcement Learning with
Parameterized Actions"): score past a keeper from the left edge of a half pitch.

A clean Gymnasium implementation of the published dynamics (the robot-soccer-server
constants and update rules of the authors' domain, as ported to gym by C. Bester for
MP-DQN), with no rendering dependency. One action = choose one of three parameterized
actions and give its parameters:

    Tuple(Discrete(3), Tuple(Box([0, -15], [40, 15], (2,)),    # kick-to(x, y)
                             Box(-7.01, 7.01, (1,)),            # shoot-goal-left(y)
                             Box(-7.01, 7.01, (1,))))           # shoot-goal-right(y)

kick-to(x, y) walks to the ball and kicks it to (x, y), lasting until the ball has stopped
and is kickable again; shoot-goal(y) kicks at point y on the goal line and lasts until the
episode ends (the two shoot actions share dynamics and range, as in the reference; agents
conventionally start them on opposite halves of the goal). The keeper intercepts shots it
can reach and otherwise shadows the ball.

Reward, as published: +50 for a goal; minus the ball's distance to the goal when the keeper
catches it, it leaves the pitch, or the episode runs out (`max_episode_steps` = 100
actions; the last one is not simulated and ends the episode as truncated). The score of a
policy is its probability of scoring, `info["scored"]`.

Observation: the 14 physical state variables [player x, y, vx, vy, orientation, keeper x, y,
vx, vy, orientation, ball x, y, vx, vy], orientations wrapped into [-pi, pi], each scaled
from its range [OBS_LOW, OBS_HIGH] (the pitch with a 5-unit margin, the speed limits) into
[0, 1] like Platform's; the clip only ever binds on a terminal frame.

`legacy_kick_to=True` reproduces a quirk of the old-gym port (cycraig/gym-goal, used by
MP-DQN): its kick-to aims at (x, x) instead of (x, y). The default follows the paper.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robustrl.core.errors import RobustRLError
from robustrl.envs.factors import KEY

# Pitch (half field, player attacks the goal at x = PITCH_LENGTH / 2).
PITCH_LENGTH, PITCH_WIDTH = 40.0, 30.0
GOAL_WIDTH, GOAL_DEPTH = 14.02, 2.44
GOAL_AREA_LENGTH, GOAL_AREA_WIDTH = 5.5, 18.32
GOAL_X = PITCH_LENGTH / 2
# Bodies (robot soccer server manual 7.07): rand = angle/velocity noise, decay per frame.
PLAYER = {"power_rate": 0.006, "size": 0.9, "rand": 0.1, "accel_max": 1.0, "speed_max": 1.0,
          "decay": 0.4}
BALL = {"power_rate": 0.027, "size": 0.4, "rand": 0.05, "accel_max": 2.7, "speed_max": 2.7,
        "decay": 0.94}
MIN_POWER, MAX_POWER = -100.0, 100.0
KICKABLE = PLAYER["size"] + 0.7
CATCHABLE = 2.0
CATCH_PROBABILITY = 1.0
INERTIA_MOMENT = 5.0
DASH_POWER = 10.0
KEEPER_INTERCEPT_POWER, KEEPER_SHADOW_POWER = 20.0, 8.0
SCORE_REWARD = 50.0
MAX_FRAMES_PER_ACTION = 10_000  # safety cap on one action's simulation (never seen in practice)
KICK_TO, SHOOT_LEFT, SHOOT_RIGHT = 0, 1, 2
ACTION_NAMES = ("kick_to", "shoot_goal_left", "shoot_goal_right")
PARAM_LOW = (np.array([0.0, -PITCH_WIDTH / 2]), np.array([-GOAL_WIDTH / 2]),
             np.array([-GOAL_WIDTH / 2]))
PARAM_HIGH = (np.array([PITCH_LENGTH, PITCH_WIDTH / 2]), np.array([GOAL_WIDTH / 2]),
              np.array([GOAL_WIDTH / 2]))
_PI = math.pi
# Physical range of each observed variable (pitch plus a 5-unit margin, speed limits, angles);
# observations are (state - OBS_LOW) / (OBS_HIGH - OBS_LOW), clipped into [0, 1].
_POS_LOW, _POS_HIGH = [-5.0, -PITCH_WIDTH / 2 - 5], [GOAL_X + 5, PITCH_WIDTH / 2 + 5]
OBS_LOW = np.array(_POS_LOW + [-1.0, -1.0, -_PI] + _POS_LOW + [-1.0, -1.0, -_PI]
                   + _POS_LOW + [-BALL["speed_max"]] * 2)
OBS_HIGH = np.array(_POS_HIGH + [1.0, 1.0, _PI] + _POS_HIGH + [1.0, 1.0, _PI]
                    + _POS_HIGH + [BALL["speed_max"]] * 2)


def _clip(x: float, low: float, high: float) -> float:
    return max(low, min(x, high))


def _wrap(angle: float) -> float:
    while angle > _PI:
        angle -= 2 * _PI
    while angle < -_PI:
        angle += 2 * _PI
    return angle


def _norm(x: float, y: float) -> float:
    """sqrt(x^2 + y^2) as the reference computes it (math.hypot rounds differently)."""
    return math.sqrt(x * x + y * y)


def _angle_to(x0: float, y0: float, x1: float, y1: float) -> float:
    return math.atan2(y1 - y0, x1 - x0)


class Body:
    """A disc with position, velocity and (for players) orientation."""

    __slots__ = ("accel_max", "decay", "orientation", "power_rate", "rand", "size", "speed_max",
                 "vx", "vy", "x", "y")

    def __init__(self, config: dict[str, float], x: float, y: float, orientation: float = 0.0):
        self.x, self.y, self.vx, self.vy = x, y, 0.0, 0.0
        self.orientation = orientation
        for key, value in config.items():
            setattr(self, key, value)

    def distance(self, other: Body) -> float:
        return _norm(self.x - other.x, self.y - other.y)

    def accelerate(self, rng: np.random.Generator, power: float, theta: float) -> None:
        """Push with `power` towards `theta`; the angle and the push are noisy."""
        theta = (1 + rng.uniform(-self.rand, self.rand)) * theta
        rmax = self.rand * _norm(self.vx, self.vy)
        nx, ny = rng.uniform(-rmax, rmax), rng.uniform(-rmax, rmax)
        rate = power * self.power_rate
        amax, vmax = self.accel_max, self.speed_max
        ax = _clip(rate * math.cos(theta) + nx, -amax, amax)
        ay = _clip(rate * math.sin(theta) + ny, -amax, amax)
        self.vx = _clip(self.vx + ax, -vmax, vmax)
        self.vy = _clip(self.vy + ay, -vmax, vmax)

    def move(self) -> None:
        self.x += self.vx
        self.y += self.vy
        self.vx *= self.decay
        self.vy *= self.decay


def _decollide(a: Body, b: Body) -> None:
    """Shift two overlapping discs apart along their centre line; both bounce back."""
    overlap = (a.size + b.size - a.distance(b)) / 2
    ab = _angle_to(a.x, a.y, b.x, b.y)
    ba = _angle_to(b.x, b.y, a.x, a.y)
    a.x += overlap * math.cos(ba)
    a.y += overlap * math.sin(ba)
    b.x += overlap * math.cos(ab)
    b.y += overlap * math.sin(ab)
    a.vx, a.vy, b.vx, b.vy = -a.vx, -a.vy, -b.vx, -b.vy


def _goal_distance(ball: Body) -> float:
    """Distance from the ball to the goal mouth (0 inside the goal)."""
    half = GOAL_WIDTH / 2
    if ball.x < GOAL_X:
        if ball.y < -half:
            return _norm(ball.x - GOAL_X, ball.y + half)
        if ball.y > half:
            return _norm(ball.x - GOAL_X, ball.y - half)
        return GOAL_X - ball.x
    if ball.y < -half:
        return half - ball.y
    if ball.y > half:
        return ball.y - half
    return 0.0


class GoalEnv(gym.Env):
    """The Goal domain; see the module docstring for the task, spaces and reward."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, max_episode_steps: int = 100, legacy_kick_to: bool = False):
        if max_episode_steps < 1:
            raise RobustRLError(f"hybrid/goal: max_episode_steps must be >= 1, "
                                f"got {max_episode_steps}")
        self.max_episode_steps = max_episode_steps
        self.legacy_kick_to = legacy_kick_to
        self.action_space = spaces.Tuple((
            spaces.Discrete(3),
            spaces.Tuple(tuple(spaces.Box(PARAM_LOW[k].astype(np.float32),
                                          PARAM_HIGH[k].astype(np.float32), dtype=np.float32)
                               for k in range(3))),
        ))
        self.observation_space = spaces.Box(0.0, 1.0, (14,), np.float32)
        self.player = self.keeper = self.ball = Body(BALL, 0.0, 0.0)
        self.steps = 0
        self._caught = False
        self._started = False  # the pitch is laid out (randomly) by reset()

    # --- episode start --------------------------------------------------------------------

    @staticmethod
    def _keeper_start(bx: float, by: float) -> tuple[float, float]:
        """Where the keeper stands: on the ball-to-goal-centre line, in the goal area."""
        grad = -by / (GOAL_X - bx)
        yint = by - grad * bx
        if bx < GOAL_X - GOAL_AREA_LENGTH:
            x = bx
        elif by < -GOAL_AREA_WIDTH / 2:
            x = (-GOAL_AREA_WIDTH / 2 - yint) / grad
        else:
            x = (GOAL_AREA_WIDTH / 2 - yint) / grad
        x = _clip(x, GOAL_X - GOAL_AREA_LENGTH, GOAL_X)
        y = _clip(grad * x + yint, -GOAL_AREA_WIDTH / 2, GOAL_AREA_WIDTH / 2)
        return x, y

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        py = self.np_random.uniform(-PITCH_WIDTH / 2, PITCH_WIDTH / 2)
        facing = _angle_to(0.0, py, GOAL_X, 0.0)
        self.player = Body(PLAYER, 0.0, py, facing)
        reach = KICKABLE - 1e-12  # the ball starts just inside kicking range
        self.ball = Body(BALL, reach * math.cos(facing), py + reach * math.sin(facing))
        kx, ky = self._keeper_start(self.ball.x, self.ball.y)
        self.keeper = Body(PLAYER, kx, ky, _angle_to(kx, ky, self.ball.x, self.ball.y))
        self.steps = 0
        self._started = True
        return self._obs(), {}

    # --- the player's skills --------------------------------------------------------------

    def _kick_power(self) -> float:
        """Kick efficiency: lower when the ball is off to the side or far away."""
        p, b = self.player, self.ball
        off = abs(_wrap(_angle_to(p.x, p.y, b.x, b.y) - p.orientation))
        return 1 - 0.25 * off / _PI - 0.25 * p.distance(b) / KICKABLE

    def _turn(self, angle: float) -> None:
        """Turn by `angle`; the faster the player moves, the less it turns (inertia)."""
        p = self.player
        speed = _norm(p.vx, p.vy)
        p.orientation = p.orientation + _wrap(angle) / (1 + INERTIA_MOMENT * speed)

    def _to_ball(self) -> None:
        """Turn towards the ball until facing it (within pi/8), then dash."""
        p, b = self.player, self.ball
        theta = _angle_to(p.x, p.y, b.x, b.y)
        if abs(_wrap(p.orientation - theta)) >= _PI / 8:
            self._turn(theta - p.orientation)
        elif p.distance(b) > KICKABLE:
            p.accelerate(self.np_random, DASH_POWER, p.orientation)

    def _kick_to(self, tx: float, ty: float) -> None:
        """Kick so that the ball comes to rest at (tx, ty); walk to the ball first."""
        p, b = self.player, self.ball
        if p.distance(b) > KICKABLE:
            self._to_ball()
            return
        # The velocity that makes a decaying ball stop at the target (measured from the player).
        ax = (1 - b.decay) * (tx - p.x) - b.vx
        ay = (1 - b.decay) * (ty - p.y) - b.vy
        efficiency = self._kick_power()
        power = _norm(ax, ay) / (efficiency * b.power_rate)
        direction = math.atan2(ay, ax) - p.orientation
        power = _clip(power, MIN_POWER, MAX_POWER) * efficiency
        b.accelerate(self.np_random, power, p.orientation + direction)

    def _move_keeper(self) -> None:
        """Intercept a ball heading for the goal, otherwise walk to where it will stop."""
        k, b = self.keeper, self.ball
        end_x = b.x + b.vx / (1 - b.decay)
        end_y = b.y + b.vy / (1 - b.decay)
        dx, dy = end_x - b.x, end_y - b.y
        grad = dy / dx if dx != 0.0 else 0.0
        yint = b.y - grad * b.x
        goal_y = grad * GOAL_X + yint
        if (end_x > GOAL_X and -GOAL_WIDTH / 2 - CATCHABLE <= goal_y <= GOAL_WIDTH / 2 + CATCHABLE
                and grad != 0):
            grad2 = -1 / grad  # the closest point of the ball's path to the keeper
            yint2 = k.y - grad2 * k.x
            tx = (yint2 - yint) / (grad - grad2)
            ty = grad * tx + yint
            k.accelerate(self.np_random, KEEPER_INTERCEPT_POWER, _angle_to(k.x, k.y, tx, ty))
            k.orientation = _angle_to(k.x, k.y, tx, ty)
        else:
            k.orientation = _angle_to(k.x, k.y, end_x, end_y)
            k.accelerate(self.np_random, KEEPER_SHADOW_POWER, k.orientation)

    def _frame(self, action: int, param: np.ndarray) -> tuple[bool, bool]:
        """One simulation frame; returns (scored, ended)."""
        if action == KICK_TO:
            tx = float(param[0])
            self._kick_to(tx, tx if self.legacy_kick_to else float(param[1]))
        else:
            self._kick_to(GOAL_X + self.ball.size, float(param[0]))
        self._move_keeper()
        bodies = (self.player, self.keeper, self.ball)
        for body in bodies:
            body.move()
        for i, a in enumerate(bodies):
            for b in bodies[i + 1:]:
                if a.distance(b) < a.size + b.size:
                    _decollide(a, b)
        ball = self.ball
        if GOAL_X <= ball.x <= GOAL_X + GOAL_DEPTH and -GOAL_WIDTH / 2 <= ball.y <= GOAL_WIDTH / 2:
            return True, True
        caught = self.np_random.random() <= CATCH_PROBABILITY and (
            self.keeper.distance(ball) < CATCHABLE)
        in_field = 0 <= ball.x <= GOAL_X and -PITCH_WIDTH / 2 <= ball.y <= PITCH_WIDTH / 2
        self._caught = caught
        return False, caught or not in_field

    # --- Gymnasium API --------------------------------------------------------------------

    def _obs(self) -> np.ndarray:
        p, k, b = self.player, self.keeper, self.ball
        state = np.array((p.x, p.y, p.vx, p.vy, _wrap(p.orientation),
                          k.x, k.y, k.vx, k.vy, _wrap(k.orientation), b.x, b.y, b.vx, b.vy))
        return np.clip((state - OBS_LOW) / (OBS_HIGH - OBS_LOW), 0.0, 1.0).astype(np.float32)

    def step(self, action: Any):
        if not self._started:
            raise RobustRLError("hybrid/goal: call reset() before step()")
        k = int(action[0])
        if not 0 <= k < 3:
            raise RobustRLError(f"hybrid/goal: action index must be 0, 1 or 2, got {k}")
        param = np.clip(np.asarray(action[1][k], np.float64), PARAM_LOW[k], PARAM_HIGH[k])
        self.steps += 1
        scored = ended = truncated = False
        self._caught = False
        frames = 0
        if self.steps >= self.max_episode_steps:
            truncated = True  # as published: the last action is not simulated
        else:
            while True:
                frames += 1
                scored, ended = self._frame(k, param)
                if ended:
                    break
                # kick-to lasts until the ball has stopped where the player can kick it again
                if (k == KICK_TO and self.player.distance(self.ball) <= KICKABLE
                        and _norm(self.ball.vx, self.ball.vy) <= 0.1):
                    break
                if frames >= MAX_FRAMES_PER_ACTION:
                    truncated = True
                    break
        distance = _goal_distance(self.ball)
        reward = SCORE_REWARD if scored else -distance if (ended or truncated) else 0.0
        info = {
            "frames": frames,
            "action_name": ACTION_NAMES[k],
            "scored": scored,
            KEY: {"scored": float(scored), "goal_distance": float(distance),
                  "keeper_catch": float(self._caught and not scored)},
        }
        return self._obs(), float(reward), ended, truncated and not ended, info

    def render(self) -> None:
        """No rendering: the domain is used headless (no pygame dependency)."""
