"""Environments behind one registry: `make`, `register`, `list_envs`, `spec`.

    >>> from robustrl import envs
    >>> env = envs.make("mujoco/Hopper-v5")
    >>> obs, info = env.reset(seed=0)
    >>> obs, r, terminated, truncated, info = env.step(env.action_space.sample())
    >>> info["reward_factors"]        # {'forward_reward': ..., 'healthy_reward': ..., ...}
"""

from robustrl.envs.registry import EnvSpec, Factor, list_envs, make, register, spec

__all__ = ["EnvSpec", "Factor", "list_envs", "make", "register", "spec"]
