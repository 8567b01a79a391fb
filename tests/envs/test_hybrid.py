"""Parameterized-action domains Platform and Goal: Gymnasium conformance, spaces as declared,
seeding, reward factors, and the published dynamics' known outcomes (scripted policies
complete Platform and score in Goal; returns bounded; the terminal conditions)."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from robustrl import envs
from robustrl.core.errors import RobustRLError
from robustrl.envs import goal, platform

IDS = ["hybrid/platform", "hybrid/goal"]
# The checker suggests [-1, 1] Box actions (the published parameter ranges are kept) and the
# raw env (both the raw env and the stack make() returns are checked).
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*symmetric and normalized space"),
    pytest.mark.filterwarnings("ignore:.*different from the unwrapped version"),
]


def _action(sizes: tuple[int, ...], k: int, params: tuple[float, ...]):
    """A parameterized action: index k, its parameters, zeros for the other actions'."""
    parts = [np.zeros(n, np.float32) for n in sizes]
    parts[k] = np.array(params, np.float32)
    return k, tuple(parts)


def act(k: int, *params: float):
    """A Platform action: run / hop / leap with its one parameter."""
    return _action((1, 1, 1), k, params)


def kick(*params: float, k: int = goal.KICK_TO):
    """A Goal action: kick-to(x, y) by default, or k = a shoot-goal action with its y."""
    return _action((2, 1, 1), k, params)


def episode(env, policy, seed: int, limit: int = 300):
    """Runs one seeded episode of `policy(raw_env) -> action`; (return, terminated,
    truncated, last info)."""
    env.reset(seed=seed)
    total, info, terminated, truncated = 0.0, {}, False, False
    for _ in range(limit):
        _, reward, terminated, truncated, info = env.step(policy(env.unwrapped))
        total += reward
        if terminated or truncated:
            break
    return total, terminated, truncated, info


@pytest.mark.parametrize("env_id", IDS)
def test_check_env(env_id: str):
    env = envs.make(env_id)
    check_env(env, skip_render_check=True)
    check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id", IDS)
def test_spaces_match_spec(env_id: str):
    env, spec = envs.make(env_id), envs.spec(env_id)
    assert str(env.observation_space) == spec.observation_space
    assert str(env.action_space) == spec.action_space
    assert spec.kind == "single"


@pytest.mark.parametrize("env_id", IDS)
def test_seeding_and_factors_on_every_step(env_id: str):
    names = {f.name for f in envs.spec(env_id).factors}

    def rollout():
        env = envs.make(env_id)
        obs, _ = env.reset(seed=5)
        env.action_space.seed(5)
        trace = [obs]
        for _ in range(40):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            assert set(info["reward_factors"]) == names
            assert all(isinstance(v, float) for v in info["reward_factors"].values())
            assert env.observation_space.contains(obs)
            trace += [obs, reward, terminated, truncated, info["reward_factors"]]
            if terminated or truncated:
                obs, _ = env.reset()
                trace.append(obs)
        return trace

    for a, b in zip(rollout(), rollout(), strict=True):
        if isinstance(a, dict):
            assert a == b
        else:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("env_id", IDS)
def test_bad_input_is_one_line_error(env_id: str):
    with pytest.raises(RobustRLError):
        envs.make(env_id, max_episode_steps=0)
    env = envs.make(env_id)
    if env_id == "hybrid/goal":
        with pytest.raises(RobustRLError, match="reset"):
            env.step(env.action_space.sample())
    env.reset(seed=0)
    with pytest.raises(RobustRLError, match="action index"):
        env.step((3, env.action_space.sample()[1]))


# --- Platform -------------------------------------------------------------------------------

def _platform_policy(env: platform.PlatformEnv):
    """Hand-written: hop over the enemy ahead, walk to the platform's edge, leap the gap.

    Hops aim to land short of the edge (a landing stops the player), a tuned run then ends
    on the edge at speed, and the leap (at most 70 wide/s for about 100 frames) just clears
    the 225- and 235-wide gaps from there.
    """
    x = env.x
    i = sum(x >= start - platform.BODY_W for start, _ in platform.PLATFORMS[1:])
    if i == 2:
        return act(platform.RUN, 30.0)
    start, width = platform.PLATFORMS[i]
    spot = start + width - 1.0
    if x >= spot - 2.0:
        return act(platform.LEAP, 430.0)
    if -25 < env.enemy_x[i] - x < 200:
        airtime = 2 * platform.HOP_DY / platform.GRAVITY + 1
        flight = platform.DT * sum(platform.VELOCITY_DECAY**k for k in range(143))
        speed = min(max((spot - 40 - x) / flight, 0.0), env.vx + 30)
        return act(platform.HOP, speed * airtime)
    return act(platform.RUN, _run_power(spot - x))


def _run_power(distance: float) -> float:
    """Run power that covers `distance` from standstill in one run (noise-free dynamics)."""
    def covered(power: float) -> float:
        x, v = 0.0, 0.0
        for _ in range(20):
            v = min(v + power, platform.MAX_DX_ON)
            x += v * platform.DT
            v *= platform.VELOCITY_DECAY
        return x

    return min(np.linspace(0, 30, 601), key=lambda p: abs(covered(p) - distance))


def test_platform_scripted_policy_completes_the_level():
    env = envs.make("hybrid/platform")
    results = [episode(env, _platform_policy, seed) for seed in range(20)]
    returns = np.array([r[0] for r in results])
    completed = returns > 1 - 1e-9
    assert completed.mean() >= 0.4 and returns.mean() > 0.9
    assert np.all(returns <= 1 + 1e-9)
    for (_total, terminated, _, info), done in zip(results, completed, strict=True):
        assert terminated
        if done:  # reaching the end is the only way to a return of exactly 1
            assert info["reward_factors"]["fell"] == info["reward_factors"]["enemy_collision"] == 0


def test_platform_random_returns_lie_in_unit_interval():
    env = envs.make("hybrid/platform")
    env.action_space.seed(0)
    for seed in range(100):
        total, terminated, truncated, _ = episode(env, lambda e: env.action_space.sample(), seed)
        assert -1e-9 <= total <= 1 + 1e-9
        assert terminated or truncated


def test_platform_terminal_conditions():
    env = envs.make("hybrid/platform")
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(act(platform.RUN, 0.0))
    assert not terminated and reward == 0.0  # standing still
    for _ in range(20):  # the patrolling enemy walks into a player who stands still
        _, _, terminated, _, info = env.step(act(platform.RUN, 0.0))
        if terminated:
            break
    assert terminated and info["reward_factors"]["enemy_collision"] == 1.0
    # Running off the edge of the first platform drops the player into the gap.
    env.reset(seed=0)
    env.unwrapped.x, env.unwrapped.enemy_x[0] = 200.0, 10.0
    _, reward, terminated, _, info = env.step(act(platform.RUN, 30.0))
    assert terminated and info["reward_factors"]["fell"] == 1.0
    assert reward == pytest.approx(info["reward_factors"]["progress"]) and reward > 0
    # Truncation after max_episode_steps actions.
    env = envs.make("hybrid/platform", max_episode_steps=1)
    env.reset(seed=0)
    _, _, terminated, truncated, _ = env.step(act(platform.RUN, 0.0))
    assert truncated and not terminated


def test_platform_matches_reference_trajectory():
    """(reward, frames) of a scripted episode as the reference port (cycraig/gym-platform, run
    with the same seeded generator) computes them; our dynamics reproduce them exactly."""
    env = envs.make("hybrid/platform")
    env.reset(seed=0)
    reference = [(0.06520182291571205, 20), (0.136276863400343, 138),
                 (0.03414549182049352, 20), (0.20821195932351316, 99)]
    script = [act(platform.RUN, 30.0), act(platform.HOP, 291.6), act(platform.RUN, 3.6),
              act(platform.LEAP, 430.0)]
    for action, (reward, frames) in zip(script, reference, strict=True):
        _, r, terminated, _, info = env.step(action)
        assert (r, info["frames"], terminated) == (reward, frames, False)


def test_platform_observation_features():
    env = envs.make("hybrid/platform")
    obs, _ = env.reset(seed=0)
    raw = obs * np.array([1055, 100, 1035, 60, 275, 275, 235, 1035, 1]) - np.array(
        [20, 0, 0, 30, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(raw, [0, 0, 230, -30, 250, 275, 225, 0, 0], atol=1e-3)


# --- Goal -----------------------------------------------------------------------------------

def _goal_shot(env: goal.GoalEnv):
    """Hand-written: one hard kick-to aimed past the far post, away from the keeper."""
    side = 1.0 if env.player.y > 0 else -1.0
    return kick(30.0, 6.0 * side)


def test_goal_scripted_shot_scores_sometimes():
    env = envs.make("hybrid/goal")
    results = [episode(env, _goal_shot, seed) for seed in range(60)]
    scored = np.array([r[3]["scored"] for r in results])
    assert 0.2 <= scored.mean() <= 0.8  # the keeper saves the rest
    for total, terminated, _, info in results:
        assert terminated
        assert (total == 50.0) == info["scored"] == bool(info["reward_factors"]["scored"])
        if not info["scored"]:
            assert total == pytest.approx(-info["reward_factors"]["goal_distance"])
            assert total <= 0


def test_goal_matches_reference_outcomes():
    """(reward, frames) of the scripted shot as the reference port (cycraig/gym-goal, run with
    the same seeded generator and kick-to aiming at (x, y)) computes them."""
    reference = [(-5.621419883277062, 9), (-6.706198392610949, 8), (50.0, 16),
                 (-14.659650780047285, 16), (-0.8087121132589168, 16), (50.0, 16)]
    env = envs.make("hybrid/goal")
    for seed, (reward, frames) in enumerate(reference):
        env.reset(seed=seed)
        _, r, terminated, _, info = env.step(_goal_shot(env.unwrapped))
        assert (r, info["frames"], terminated) == (reward, frames, True)


def test_goal_legacy_kick_to_scores_with_a_shot_from_close():
    env = envs.make("hybrid/goal", legacy_kick_to=True)

    def policy(e: goal.GoalEnv):
        if e.steps == 0:  # the port's kick-to aims at (x, x): dribble a little first
            return kick(2.0, 0.0)
        side = 1.0 if e.keeper.y < e.ball.y else -1.0
        return kick(5.0 * side, k=goal.SHOOT_LEFT)

    scored = [episode(env, policy, seed)[3]["scored"] for seed in range(40)]
    assert 0 < np.mean(scored) < 1


def test_goal_keeper_catch_and_time_limit():
    env = envs.make("hybrid/goal")
    env.reset(seed=0)
    # Kicking the ball into the keeper's arms ends the episode with a catch.
    keeper = env.unwrapped.keeper
    _, reward, terminated, _, info = env.step(kick(keeper.x, keeper.y))
    assert terminated and info["reward_factors"]["keeper_catch"] == 1.0 and reward < 0
    # Time limit: the last allowed action is not simulated and truncates the episode.
    env = envs.make("hybrid/goal", max_episode_steps=3)
    env.reset(seed=1)
    ball = (env.unwrapped.ball.x, env.unwrapped.ball.y)
    for step in range(3):
        _, reward, terminated, truncated, info = env.step(kick(*ball))
        if step < 2:
            assert not (terminated or truncated)
    assert truncated and not terminated and info["frames"] == 0
    assert reward == pytest.approx(-info["reward_factors"]["goal_distance"])
