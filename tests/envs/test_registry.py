"""The registry core and the Gymnasium-backed families (gym/, mujoco/)."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from robustrl import envs
from robustrl.core.errors import RobustRLError

MUJOCO = envs.list_envs("mujoco")


def test_families_are_registered():
    ids = envs.list_envs()
    assert "mujoco/HalfCheetah-v5" in ids and "gym/Pendulum-v1" in ids
    for family in ("mujoco", "gym", "mpe", "maze", "hybrid", "traffic"):
        assert envs.list_envs(family), family


@pytest.mark.parametrize("env_id", ["mujoco/Hopper-v5", "gym/Pendulum-v1"])
def test_check_env(env_id):
    check_env(envs.make(env_id), skip_render_check=True)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", MUJOCO)
def test_check_env_all_mujoco(env_id):
    check_env(envs.make(env_id), skip_render_check=True)


@pytest.mark.parametrize("env_id", MUJOCO)
def test_mujoco_factors_and_spaces(env_id):
    spec = envs.spec(env_id)
    env = envs.make(env_id)
    assert str(env.observation_space) == spec.observation_space
    assert str(env.action_space) == spec.action_space
    env.reset(seed=0)
    for _ in range(3):
        _, reward, _, _, info = env.step(env.action_space.sample())
        factors = info["reward_factors"]
        assert set(factors) == {f.name for f in spec.factors}
        # The signed factors rebuild the env reward (contact/impact terms aside).
        rebuilt = sum(f.sign * factors[f.name] for f in spec.factors)
        assert np.isfinite(rebuilt)
    env.close()


def test_halfcheetah_factors_rebuild_reward():
    env = envs.make("mujoco/HalfCheetah-v5")
    env.reset(seed=0)
    _, reward, _, _, info = env.step(env.action_space.sample())
    f = info["reward_factors"]
    assert reward == pytest.approx(f["forward_reward"] - f["control_cost"])


def test_seeding_repeats_rollouts():
    def rollout():
        env = envs.make("mujoco/Hopper-v5")
        obs, _ = env.reset(seed=3)
        env.action_space.seed(3)
        out = [obs]
        for _ in range(20):
            out.append(env.step(env.action_space.sample())[0])
        return np.array(out)

    np.testing.assert_array_equal(rollout(), rollout())


def test_unknown_id_suggests():
    with pytest.raises(RobustRLError, match="did you mean 'mujoco/Hopper-v5'"):
        envs.make("mujoco/Hoper-v5")
    with pytest.raises(RobustRLError, match="invalid arguments"):
        envs.make("mujoco/Hopper-v5", not_a_kwarg=1)


def test_gym_open_family_accepts_any_registered_id():
    env = envs.make("gym/MountainCar-v0")
    env.reset(seed=0)
    assert env.step(0)[-1]["reward_factors"] == {"env_reward": -1.0}


class Corridor(gym.Env):
    """A user's env: walk right to the goal; reports its own factors."""

    observation_space = gym.spaces.Box(-1.0, 10.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, length: float = 5.0):
        self.length = length

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = 0.0
        return np.array([self.x], np.float32), {}

    def step(self, action):
        move = float(np.clip(action[0], -1, 1))
        self.x = float(np.clip(self.x + move, -1.0, 10.0))
        done = self.x >= self.length
        effort = move**2
        info = {"reward_factors": {"progress": move, "effort": effort}}
        return np.array([self.x], np.float32), move - 0.1 * effort, done, False, info


def test_register_user_env():
    envs.register("custom/Corridor-v0", Corridor, factors={"progress": "higher",
                                                          "effort": "lower"}, length=3.0)
    env = envs.make("custom/Corridor-v0")
    assert env.unwrapped.length == 3.0
    env.reset(seed=0)
    assert set(env.step(np.ones(1, np.float32))[-1]["reward_factors"]) == {"progress", "effort"}
    assert envs.spec("custom/Corridor-v0").ranking == ("progress", "effort")
    with pytest.raises(RobustRLError, match="invalid argument"):
        envs.make("custom/Corridor-v0", width=2)
    with pytest.raises(RobustRLError, match="family prefix"):
        envs.register("Corridor-v0", Corridor)
    envs.registry._REGISTRY.pop("custom/Corridor-v0")  # the README's example registers its own


# -- identity: an env made by `make` carries its id and the kwargs it was given -------------------


def test_identity_of_made_envs_through_wrappers():
    env = envs.make("gym/Pendulum-v1", max_episode_steps=50)
    made_as = ("gym/Pendulum-v1", {"max_episode_steps": 50})
    assert envs.identity(env) == made_as
    wrapped = gym.wrappers.ClipAction(gym.wrappers.RecordEpisodeStatistics(env))
    assert envs.identity(wrapped) == made_as
    envs.identity(wrapped)[1]["max_episode_steps"] = 1  # a copy: the env keeps its own
    assert envs.identity(env) == made_as
    assert envs.identity(envs.make("mujoco/Hopper-v5")) == ("mujoco/Hopper-v5", {})
    envs.register("custom/Corridor-v1", Corridor, length=3.0,
                  factors={"progress": "higher", "effort": "lower"})
    assert envs.identity(envs.make("custom/Corridor-v1", length=2.0)) == (
        "custom/Corridor-v1", {"length": 2.0})


def test_identity_is_none_for_envs_make_did_not_return():
    assert envs.identity(gym.make("Pendulum-v1")) is None
    assert envs.identity(Corridor()) is None
    assert envs.identity(gym.wrappers.ClipAction(gym.make("Pendulum-v1"))) is None


def test_identity_through_a_forwarding_wrapper():
    class Forwarding:  # like robustrl's reward wrappers: `.env`, everything else forwarded
        def __init__(self, env):
            self.env = env

        def __getattr__(self, name):
            return getattr(self.env, name)

    env = envs.make("gym/Pendulum-v1")
    assert envs.identity(Forwarding(Forwarding(env))) == ("gym/Pendulum-v1", {})
    assert envs.identity(Forwarding(gym.make("Pendulum-v1"))) is None


def test_envs_modules_do_not_import_each_other():
    """No cycle among robustrl.envs modules, counting imports inside functions too (the
    package `robustrl.envs` is its `__init__`)."""
    import ast
    from pathlib import Path

    root = Path(envs.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in root.glob("*.py"):
        name = "robustrl.envs" if path.stem == "__init__" else f"robustrl.envs.{path.stem}"
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
        graph[name] = {m for m in found if m.startswith("robustrl.envs")}
    for name in graph:
        graph[name] &= set(graph)
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join([*trail, node, nxt])}"
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
