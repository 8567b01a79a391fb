"""Environments behind one registry: `make`, `register`, `list_envs`, `spec`, `identity`.

    >>> from robustrl import envs
    >>> env = envs.make("mujoco/Hopper-v5")
    >>> obs, info = env.reset(seed=0)
    >>> obs, r, terminated, truncated, info = env.step(env.action_space.sample())
    >>> info["reward_factors"]        # {'forward_reward': ..., 'healthy_reward': ..., ...}
    >>> envs.identity(env)            # ('mujoco/Hopper-v5', {}), also through wrappers

`check_id(id)` lists an env's problems and notes, one line each (`register` runs it).
`make_subprocess` / `make_vec` run envs in child processes (`robustrl.envs.worker`).
"""

from robustrl.envs.registry import (
    check_id,
    list_envs,
    make,
    make_subprocess,
    make_vec,
    register,
    spec,
)
from robustrl.envs.specs import EnvSpec, Factor, identity

__all__ = ["EnvSpec", "Factor", "check_id", "identity", "list_envs", "make", "make_subprocess",
           "make_vec", "register", "spec"]
