"""robustrl.envs.state: a live env saved mid-episode and restored into a fresh copy continues
exactly; envs whose state lives elsewhere say so (None)."""

from __future__ import annotations

import numpy as np
import pytest

from robustrl import envs
from robustrl.envs.state import get_state, set_state


def _rollout(env, actions, parallel: bool) -> list:
    out = []
    for a in actions:
        step = env.step({name: a for name in env.agents} if parallel else a)
        out.append(step[:2])
        if (not env.agents) if parallel else (step[2] or step[3]):
            out.append(env.reset()[0])
    return out


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(np.array_equal(a, b))


@pytest.mark.parametrize("env_id, parallel", [
    ("mujoco/Hopper-v5", False), ("mpe/simple_spread", True), ("hybrid/platform", False),
    ("hybrid/goal", False), ("gym/CartPole-v1", False), ("maze/PointMaze_UMaze-v3", False)])
def test_restored_env_continues_the_episode_exactly(env_id, parallel):
    env = envs.make(env_id)
    env.reset(seed=5)
    space = env.action_space(env.agents[0]) if parallel else env.action_space
    space.seed(0)
    actions = [space.sample() for _ in range(60)]
    _rollout(env, actions[:17], parallel)  # mid-episode
    state = get_state(env)
    copy = envs.make(env_id)  # a fresh env made the same way, as a resumed run makes it
    set_state(copy, state)
    assert _same(_rollout(copy, actions[17:], parallel), _rollout(env, actions[17:], parallel))


def test_sumo_env_is_not_restorable():
    pytest.importorskip("libsumo")
    env = envs.make("traffic/single-intersection")
    try:
        env.reset(seed=0)
        assert get_state(env) is None
    finally:
        env.close()


def test_not_restorable_envs_say_so():
    from robustrl.perturb import apply

    assert get_state(apply(envs.make("gym/Pendulum-v1"), ["obs-gaussian:0.1"])) is None
    import gymnasium as gym

    assert get_state(gym.make("Pendulum-v1")) is None  # not made by robustrl, no hook
