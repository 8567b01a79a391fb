"""What every agent shares: env handling, space checks, save/load, the learn-callback contract.

An algorithm file subclasses `Agent` once and fills in `_build`, `learn`, `act`,
`policy_output` and the state it wants checkpointed; there is no deeper hierarchy.

Callback contract: `learn(total_steps, callback)` trains until `num_steps == total_steps`
(so a resumed agent calls it with the same total) and calls `callback(agent, metrics)` every
log interval; a callback returning False stops training early.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from robustrl.core.config import from_dict, to_dict
from robustrl.core.errors import RobustRLError
from robustrl.core.io import atomic_torch_save
from robustrl.core.seeding import rng_state, seed_everything, set_rng_state

Callback = Callable[["Agent", dict[str, float]], bool | None]
EnvLike = str | gym.Env | Callable[[], gym.Env]

CHECKPOINT_FORMAT = 1


def space_name(space: gym.Space) -> str:
    return type(space).__name__


class Agent:
    """Base of the algorithm classes; see the module docstring for the contract."""

    name: ClassVar[str]
    Config: ClassVar[type]
    action_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Box,)
    """Action space types this agent handles; anything else is refused with one line."""

    def __init__(self, env: EnvLike, config: Any = None, seed: int = 0,
                 env_kwargs: dict[str, Any] | None = None):
        self.config = config if config is not None else self.Config()
        self.seed = seed
        self.env_kwargs = dict(env_kwargs or {})
        self.env_id = env if isinstance(env, str) else None
        self.rng = seed_everything(seed)
        self.num_steps = 0
        self.env_fn = self._env_factory(env)
        probe = env if isinstance(env, gym.Env) else self.env_fn()
        self.observation_space = probe.observation_space
        self.action_space = probe.action_space
        self.check_spaces(self.observation_space, self.action_space)
        self._probe_env = probe
        self._build()

    # ----------------------------------------------------------------- environments
    def _env_factory(self, env: EnvLike) -> Callable[[], gym.Env]:
        if isinstance(env, str):
            from robustrl.envs import make

            return lambda: make(env, **self.env_kwargs)
        if isinstance(env, gym.Env):
            used = [True]  # the instance itself already serves as the first copy

            def single_instance() -> gym.Env:
                if used:
                    raise RobustRLError(f"{self.name} needs several env copies; pass an env id "
                                        "or a factory (lambda: MyEnv()) instead of an instance")
                used.append(True)
                return env

            return single_instance
        if callable(env):
            return env
        raise RobustRLError(f"env must be an env id, a gymnasium.Env or a factory, got {env!r}")

    def take_env(self) -> gym.Env:
        """The env made while probing spaces, handed over once so it is not made twice."""
        env, self._probe_env = self._probe_env, None
        return env if env is not None else self.env_fn()

    @property
    def in_process_only(self) -> bool:
        """libsumo runs one simulation per process: other traffic copies go to subprocesses."""
        return bool(self.env_id) and (self.env_id.startswith(("traffic/", "hybrid/traffic-")))

    def make_extra_env(self) -> Any:
        """A further env copy (another process for traffic ids)."""
        if self.in_process_only:
            from robustrl.envs.traffic_worker import make_subprocess

            return make_subprocess(self.env_id, **self.env_kwargs)
        return self.env_fn()

    def make_eval_env(self) -> Any:
        """The env `robustrl.train.evaluate` uses: in this process when it can be (dynamics
        perturbations need the simulation at hand), a subprocess one if this process's traffic
        simulation is taken (by this agent's training env or any other)."""
        if self.in_process_only and self._probe_env is None:
            from robustrl.envs.traffic import _RUNNING

            owner = _RUNNING() if _RUNNING is not None else None
            if owner is not None and owner.running:
                return self.make_extra_env()
        return self.take_env()

    def close(self) -> None:
        """Close the envs this agent made (training copies, the probe); `act` still works and
        `learn` makes new envs and starts new episodes. Frees e.g. this process's libsumo
        simulation."""
        for name in ("envs", "env", "_probe_env"):
            env = getattr(self, name, None)
            if env is not None:
                env.close()
                setattr(self, name, None)
        if hasattr(self, "obs"):
            self.obs = None

    @classmethod
    def check_spaces(cls, observation_space: gym.Space, action_space: gym.Space) -> None:
        if not isinstance(action_space, cls.action_spaces):
            supported = ", ".join(t.__name__ for t in cls.action_spaces)
            raise RobustRLError(
                f"{cls.name} cannot handle action space {action_space}; it supports {supported}"
                f" (`robustrl train --help` lists the agents)")
        if not isinstance(observation_space, gym.spaces.Box):
            raise RobustRLError(
                f"{cls.name} needs a Box observation space, got {space_name(observation_space)};"
                " flatten it (gymnasium.wrappers.FlattenObservation, or the env's flatten=True)")

    # ----------------------------------------------------------------- to implement
    def _build(self) -> None:
        raise NotImplementedError

    def learn(self, total_steps: int, callback: Callback | None = None) -> Agent:
        raise NotImplementedError

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        raise NotImplementedError

    def policy_output(self, obs: torch.Tensor) -> torch.Tensor:
        """Differentiable policy output for raw observations (logits or mean action).

        Perturbation attacks and the ERNIE regularizer work on this function.
        """
        raise NotImplementedError

    @property
    def attack_policy(self) -> Any:
        """The `policy_fn` perturbations that attack the policy (obs-pgd, act-pra) take:
        `policy_output`; multi-agent learners give one function per agent."""
        return self.policy_output

    @property
    def obs_scale(self) -> np.ndarray | None:
        """Per-dimension std of the observation normalizer (None: the agent has none); a
        multi-agent learner whose agents' observation sizes differ gives one per agent.

        Attack radii are given in these normalized units.
        """
        return None

    def state_dict(self, include_buffer: bool = False) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # ----------------------------------------------------------------- persistence
    def save(self, path: str | Path, include_buffer: bool = False) -> None:
        """Write the agent (and with `include_buffer`, everything to resume training) atomically."""
        atomic_torch_save({
            "format": CHECKPOINT_FORMAT,
            "agent": self.name,
            "config": to_dict(self.config),
            "env_id": self.env_id,
            "env_kwargs": self.env_kwargs,
            "seed": self.seed,
            "num_steps": self.num_steps,
            "state": self.state_dict(include_buffer),
            "rng": rng_state(self.rng),
        }, path)

    def restore(self, checkpoint: dict[str, Any]) -> None:
        self.load_state_dict(checkpoint["state"])
        self.num_steps = checkpoint["num_steps"]
        set_rng_state(self.rng, checkpoint["rng"])


def read_checkpoint(path: str | Path, kind: str | None = None,
                    what: str = "checkpoint") -> dict[str, Any]:
    """Load a checkpoint file, turning every way it can be broken into one clear line.

    `kind`: the checkpoint's "kind" entry must equal it (offline workers and managers mark
    theirs; agents' carry none); `what` names the file in the messages."""
    path = Path(path)
    if not path.is_file():
        raise RobustRLError(f"{what} {path} not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated/corrupt files raise many different errors
        raise RobustRLError(f"{what} {path} is corrupt or unreadable ({type(e).__name__}); "
                            "delete it to restart, or resume from an intact run") from None
    if (not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT
            or (kind is not None and checkpoint.get("kind") != kind)):
        raise RobustRLError(f"{path} is not a robustrl {kind or 'agent'} checkpoint")
    return checkpoint


def config_from_checkpoint(cls: type[Agent], checkpoint: dict[str, Any]):
    return from_dict(cls.Config, checkpoint["config"])

