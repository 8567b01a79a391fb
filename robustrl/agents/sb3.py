"""Stable-Baselines3 algorithms as robustrl agents (extra robustrl[sb3]).

`sb3:ppo`, `sb3:sac`, ... are registry names like `ppo`: a run, `robustrl train` or a bench suite
trains them through SB3 with SB3's own defaults, and evaluation, perturbations (obs-pgd attacks
`policy_output`), checkpoints and reports treat them as any other agent. `load_zip` wraps a model
file saved by SB3 itself (`model.save("m.zip")`) for `robustrl eval m.zip --sb3 ALGO --env ID`.

Checkpoints hold SB3's own zip (bytes) of the model; an off-policy replay buffer is not kept,
so a resumed sb3 run continues from its last checkpoint with an empty buffer.
"""

from __future__ import annotations

import importlib
import io
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from robustrl.agents.base import Agent, Callback, Capabilities
from robustrl.core.errors import RobustRLError

ALGOS: dict[str, tuple[str, tuple[type[gym.Space], ...]]] = {
    "ppo": ("PPO", (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete,
                    gym.spaces.MultiBinary)),
    "a2c": ("A2C", (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete,
                    gym.spaces.MultiBinary)),
    "sac": ("SAC", (gym.spaces.Box,)),
    "td3": ("TD3", (gym.spaces.Box,)),
    "ddpg": ("DDPG", (gym.spaces.Box,)),
    "dqn": ("DQN", (gym.spaces.Discrete,)),
}
"""`sb3:<name>` -> SB3 class name and the action spaces it handles."""
ON_POLICY = ("ppo", "a2c")


def sb3_module() -> Any:
    try:
        return importlib.import_module("stable_baselines3")
    except ImportError:
        raise RobustRLError("sb3:* agents need Stable-Baselines3: "
                            "pip install robustrl[sb3]") from None


@dataclass
class SB3Config:
    """SB3 trains with its own defaults; only these are robustrl's."""

    policy: str = "MlpPolicy"
    """SB3 policy class name."""
    log_every: int = 1000
    """Env steps between log events (metrics.csv rows, callbacks, evaluations)."""


class SB3Agent(Agent):
    """A Stable-Baselines3 algorithm behind robustrl's Agent interface."""

    Config = SB3Config
    algo: str = "ppo"
    batched_act = True  # SB3's predict acts on a stack of observations row by row

    def __init__(self, env: Any, config: Any = None, seed: int = 0,
                 env_kwargs: dict[str, Any] | None = None, model: Any = None,
                 device: str = "cpu"):
        self._loaded = model  # a model SB3 saved (load_zip), else a fresh one is built
        super().__init__(env, config, seed, env_kwargs, device)

    def _build(self) -> None:
        if self._loaded is not None:
            self.model, self._loaded = self._loaded, None
            return
        cls = getattr(sb3_module(), ALGOS[self.algo][0])
        self.model = cls(self.config.policy, self.take_env(), seed=self.seed,
                         device=self.device, verbose=0)

    # ----------------------------------------------------------------- training
    def learn(self, total_steps: int, callback: Callback | None = None) -> SB3Agent:
        if self.num_steps >= total_steps:
            return self
        if self.model.get_env() is None:
            self.model.set_env(self.take_env())
        bridge = _bridge(self, callback)
        self.model.learn(total_steps - self.num_steps, callback=bridge,
                         reset_num_timesteps=False, progress_bar=False)
        self.num_steps = int(self.model.num_timesteps)
        return self

    def metrics(self, since: int, started: float) -> dict[str, float]:
        """steps/s, the mean return and length of SB3's last 100 episodes, SB3's losses."""
        episodes = list(self.model.ep_info_buffer or [])
        out = {"steps_per_second": (self.num_steps - since) / max(time.perf_counter() - started,
                                                                  1e-9)}
        if episodes:
            out["episode_return"] = float(np.mean([e["r"] for e in episodes]))
            out["episode_length"] = float(np.mean([e["l"] for e in episodes]))
        logged = getattr(self.model, "_logger", None)  # SB3's latest train/* values (losses)
        for key, value in (logged.name_to_value.items() if logged is not None else ()):
            if key.startswith("train/") and isinstance(value, (int, float, np.floating)):
                out[key.removeprefix("train/")] = float(value)
        return out

    # ----------------------------------------------------------------- acting
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return self.model.predict(obs, deterministic=deterministic)[0]

    def policy_output(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits (discrete) or mean action (continuous), differentiable in `obs`."""
        policy = self.model.policy
        obs = obs.float()
        if self.algo in ON_POLICY:
            dist = policy.get_distribution(obs).distribution
            return dist.logits if hasattr(dist, "logits") else dist.mean
        if self.algo == "dqn":
            return policy.q_net(obs)
        return policy.actor(obs, deterministic=True) if self.algo == "sac" else policy.actor(obs)

    # ----------------------------------------------------------------- persistence
    def state_dict(self, include_buffer: bool = False) -> dict[str, Any]:
        buffer = io.BytesIO()
        self.model.save(buffer)
        return {"sb3_zip": buffer.getvalue()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        cls = getattr(sb3_module(), ALGOS[self.algo][0])
        self._close_model_env()
        self.model = cls.load(io.BytesIO(state["sb3_zip"]), device=self.device)

    def close(self) -> None:
        self._close_model_env()
        super().close()

    def _close_model_env(self) -> None:
        """Close the envs SB3 holds (its VecEnv); `learn` hands it a new one."""
        env = self.model.get_env()
        if env is not None:
            env.close()
            self.model.env = None


def _bridge(agent: SB3Agent, callback: Callback | None) -> Any:
    """An SB3 callback calling robustrl's `callback(agent, metrics)` every `log_every` steps;
    False from it stops SB3's training."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Bridge(BaseCallback):
        def _on_training_start(self) -> None:
            self.since, self.last, self.started = (agent.num_steps, agent.num_steps,
                                                   time.perf_counter())

        def _on_step(self) -> bool:
            agent.num_steps = int(self.model.num_timesteps)
            if callback is None or agent.num_steps - self.last < agent.config.log_every:
                return True
            self.last = agent.num_steps
            return callback(agent, agent.metrics(self.since, self.started)) is not False

    return Bridge()


@cache
def sb3_class(name: str) -> type[SB3Agent]:
    """The agent class of registry name `sb3:<algo>`."""
    algo = name.removeprefix("sb3:")
    if algo not in ALGOS:
        raise RobustRLError(f"unknown agent '{name}'; SB3 agents: "
                            f"{', '.join('sb3:' + a for a in ALGOS)}")
    sb3_module()
    caps = Capabilities(agents="single",
                        learning="on-policy" if algo in ON_POLICY else "off-policy",
                        action_spaces=ALGOS[algo][1], ernie=False, relabel=False,
                        learned_reward=False)
    return type(f"SB3_{algo.upper()}", (SB3Agent,),
                {"name": f"sb3:{algo}", "algo": algo, "capabilities": caps,
                 "__doc__": f"Stable-Baselines3 {ALGOS[algo][0]} (its own defaults)."})


def _short(space: gym.Space) -> str:
    return f"Box(shape={space.shape})" if isinstance(space, gym.spaces.Box) else str(space)


def load_zip(algo: str, path: str | Path, env_id: str,
             env_kwargs: dict[str, Any] | None = None) -> SB3Agent:
    """An agent acting with the SB3 model saved at `path` (`model.save`) on env `env_id`."""
    path = Path(path)
    if not path.is_file():
        raise RobustRLError(f"SB3 model file {path} not found")
    cls = sb3_class(f"sb3:{algo}")
    try:
        model = getattr(sb3_module(), ALGOS[algo][0]).load(str(path), device="cpu")
    except Exception as e:  # a non-zip, another algorithm's file, a truncated download
        raise RobustRLError(f"{path} is not an SB3 {ALGOS[algo][0]} model file "
                            f"({type(e).__name__}: {e})") from None
    agent = cls(env_id, SB3Config(), env_kwargs=env_kwargs, model=model)
    if (model.observation_space.shape != agent.observation_space.shape
            or model.action_space != agent.action_space):
        raise RobustRLError(f"{path} was trained on observations {_short(model.observation_space)}"
                            f" and actions {_short(model.action_space)}; {env_id} has "
                            f"{_short(agent.observation_space)} and {_short(agent.action_space)}")
    agent.num_steps = int(model.num_timesteps)
    return agent


__all__ = ["ALGOS", "SB3Agent", "SB3Config", "load_zip", "sb3_class"]
