"""NaN/Inf guards: a run stops at the first non-finite number with one line naming the step,
where it came from and the way out, instead of training and evaluating to `nan` silently.

Cheap by construction: env outputs are checked by one vectorized `np.isfinite` per step as
they leave the env (`guard_env`, wrapped around every training env by the run's pipeline);
losses and parameters only at log time (`check_logged`), with one `torch.isfinite` per tensor.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from robustrl.core.errors import RobustRLError

ENV_WAY_OUT = ("the env emits it: fix the env (or clip/sanitize its output in a wrapper) and "
               "train again")
DATA_WAY_OUT = "drop or repair those transitions and train again"
TRAIN_WAY_OUT = ("training diverged: lower the learning rate (--set lr=...), clip gradients "
                 "(max_grad_norm) or scale rewards, then train again (checkpoint.pt holds the "
                 "last finite state)")


class NonFiniteError(RobustRLError):
    """A NaN or Inf reached training; the message names the source and the way out."""


def _finite(value: Any) -> bool:
    if isinstance(value, (float, int, np.floating, np.integer)):  # rewards
        return math.isfinite(value)
    if type(value) is np.ndarray and value.dtype.kind == "f":  # the hot path: one sum, per step
        # NaN/Inf make the sum non-finite; a finite sum that overflowed is checked in full
        return math.isfinite(value.sum()) or bool(np.isfinite(value).all())
    if isinstance(value, Mapping):
        return all(_finite(v) for v in value.values())
    if isinstance(value, (tuple, list)):
        return all(_finite(v) for v in value)
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    array = np.asarray(value)
    return array.dtype.kind not in "fc" or bool(np.isfinite(array).all())


def check_finite(value: Any, source: str, way_out: str = ENV_WAY_OUT,
                 step: int | None = None) -> None:
    """Raise `NonFiniteError` if `value` (array, scalar, or a dict/tuple of them) holds a NaN
    or Inf; `source` says what it is ("env observation", "actor_loss", ...)."""
    if not _finite(value):
        at = f"step {step}: " if step is not None else ""
        raise NonFiniteError(f"{at}{source} is NaN or Inf; {way_out}")


def check_logged(step: int, metrics: Mapping[str, Any], modules: Iterable[Any] = ()) -> None:
    """At log time: every logged loss (a key containing "loss") and every parameter of
    `modules` (torch modules; anything else is skipped) must be finite."""
    for key, value in metrics.items():
        if "loss" in key and isinstance(value, (int, float)) and not math.isfinite(value):
            raise NonFiniteError(f"step {step}: {key} is {value}; {TRAIN_WAY_OUT}")
    for module in modules:
        if isinstance(module, torch.nn.Module):
            for name, p in module.named_parameters():
                if not bool(torch.isfinite(p).all()):
                    raise NonFiniteError(f"step {step}: parameter {name} is NaN or Inf; "
                                         f"{TRAIN_WAY_OUT}")


def modules_of(owner: Any) -> list[torch.nn.Module]:
    """The torch modules among `owner`'s attributes (an agent's networks)."""
    return [v for v in vars(owner).values() if isinstance(v, torch.nn.Module)]


def at_step(error: NonFiniteError, step: int) -> NonFiniteError:
    """`error` with the training step in front (env guards do not know the agent's step)."""
    text = str(error)
    return error if text.startswith("step ") else NonFiniteError(f"step {step}: {text}")


class _ChecksOutputs:
    """reset/step that check what leaves `self.env` (single values or per-agent dicts)."""

    env: Any

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        check_finite(obs, "env observation (at reset)")
        return obs, info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        check_finite(obs, "env observation")
        check_finite(reward, "env reward")
        return obs, reward, terminated, truncated, info


class GuardedEnv(_ChecksOutputs, gym.Wrapper):
    """A Gymnasium env whose observations and rewards are checked as they leave it."""

    STATELESS = True  # nothing of its own to save for an exact resume (robustrl.envs.state)


class GuardedForwardingEnv(_ChecksOutputs):
    """The same for an env that is no `gym.Env` (a PettingZoo ParallelEnv with dicts of
    per-agent values, an env in a worker process); everything else is forwarded to it."""

    STATELESS = True

    def __init__(self, env: Any):
        self.env = env

    def __getattr__(self, name: str) -> Any:
        env = self.__dict__.get("env")  # absent while unpickling (robustrl.envs.state)
        if env is None:
            raise AttributeError(name)
        return getattr(env, name)


def guard_env(env: Any) -> Any:
    """`env` with its observations and rewards checked for NaN/Inf (once: a guarded env is
    returned as is)."""
    if isinstance(env, (GuardedEnv, GuardedForwardingEnv)):
        return env
    return GuardedEnv(env) if isinstance(env, gym.Env) else GuardedForwardingEnv(env)
