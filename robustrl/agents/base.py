"""What every agent shares: env handling, space checks, capabilities, save/load, the
learn-callback contract.

An algorithm file subclasses `Agent` once and fills in `_build`, `learn`, `act`,
`policy_output` and the state it wants checkpointed; there is no deeper hierarchy. `learn` may
hand the loop itself to `off_policy_learn` or `on_policy_learn` (below), keeping only what is
its own (how it explores, what runs before a rollout).

Envs. `env` is an env id, an env instance or a zero-argument factory. The instance (or the first
env the id or factory makes) is the agent's first env; every further copy is `env_fn()`:
`robustrl.envs.make(id, **kwargs)` for an id or an instance `envs.make` made (its identity), the
factory otherwise. Which copies run in another process (libsumo's one simulation per process)
is `envs.make`'s business, not the agent's.

Callback contract: `learn(total_steps, callback)` trains until `num_steps == total_steps`
(so a resumed agent calls it with the same total) and calls `callback(agent, metrics)` every
log interval; a callback returning False stops training early. Every subclass's `learn` is
wrapped once (robustrl.agents.learning) to also take `progress=True` (the CLI's bar),
`callbacks=[fn]` (fn(LearnInfo); False stops) and `threads` (default: one unless the user set them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
import torch

from robustrl.agents.learning import wrap_learn
from robustrl.core.checkpoint import load_state, state_of
from robustrl.core.config import to_dict
from robustrl.core.device import torch_device
from robustrl.core.episodes import EpisodeStats
from robustrl.core.errors import RobustRLError
from robustrl.core.io import atomic_torch_save
from robustrl.core.logging import host_floats
from robustrl.core.loop import StepRate, crossed, updates_per_step
from robustrl.core.parallel import is_parallel_env
from robustrl.core.provenance import provenance
from robustrl.core.rng import set_space_rng_state, space_rng_state
from robustrl.core.seeding import rng_state, seed_everything, set_rng_state
from robustrl.core.vector import make_vector
from robustrl.core.vector import step as vector_step
from robustrl.envs import identity, make
from robustrl.envs.state import get_states, set_states

Callback = Callable[["Agent", dict[str, float]], bool | None]
EnvLike = str | gym.Env | Callable[[], gym.Env]

CHECKPOINT_FORMAT = 1
AGENT_KEYS = ("agent", "config", "env_id", "env_kwargs", "seed", "num_steps", "state", "rng")
"""What every agent checkpoint holds (`Agent.save`)."""


@dataclass(frozen=True)
class Capabilities:
    """What a learner supports, declared once per class: the registry's table and the CLI's
    one-line refusals read it instead of trying and failing deep inside a run."""

    agents: Literal["single", "multi"]
    """One Gymnasium agent, or a PettingZoo ParallelEnv's agents."""
    learning: Literal["on-policy", "off-policy", "offline"]
    action_spaces: tuple[type[gym.Space], ...]
    """Action space types it handles; anything else is refused with one line."""
    ernie: bool
    """Accepts robust.method = ernie (the Lipschitz regularizer of robustrl.robust)."""
    relabel: bool
    """Its replay buffer stores env actions, so a learned reward model can recompute the
    stored rewards (`ReplayBuffer.relabel`)."""
    learned_reward: bool
    """Can train on --reward learned / heron / weighted at all."""


def space_name(space: gym.Space) -> str:
    return type(space).__name__


class Agent:
    """Base of the algorithm classes; see the module docstring for the contract."""

    name: ClassVar[str]
    Config: ClassVar[type]
    capabilities: ClassVar[Capabilities]
    STATE: ClassVar[tuple[str, ...]] = ()
    """Attributes a checkpoint holds (robustrl.core.checkpoint: networks, optimizers,
    normalizers, counters; "stats.episodes" reaches into an attribute); the replay buffer is
    added when saving for resuming."""
    LIVE: ClassVar[tuple[str, ...]] = ("obs", "state", "mean", "discounted", "stats")
    """Attributes of the episodes in progress (those an instance has), saved whole with the
    env copies' state when saving for resuming, so a resumed run continues them exactly."""
    batched_act: ClassVar[bool] = False
    """`act(stack, deterministic=True)` gives each row the action that row gets in any other
    stack of >= 8 rows, so evaluation may play many episodes at once (train.evaluation)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "learn" in cls.__dict__:
            cls.learn = wrap_learn(cls.__dict__["learn"])  # type: ignore[method-assign]

    def __init__(self, env: EnvLike, config: Any = None, seed: int = 0,
                 env_kwargs: dict[str, Any] | None = None, device: str = "cpu"):
        self.device = torch_device(device)
        self.config = config if config is not None else self.Config()
        self.seed = seed
        self.rng = seed_everything(seed)
        self.num_steps = 0
        first = self._connect(env, env_kwargs)
        self.observation_space, self.action_space, self.n_agents = self.spaces_of(first)
        self._probe_env: Any = first
        self._read_env(first)
        self._build()

    # ----------------------------------------------------------------- environments
    def _connect(self, env: EnvLike, env_kwargs: dict[str, Any] | None) -> Any:
        """Set `env_id`, `env_kwargs` and `env_fn` from `env`; return the first env."""
        if isinstance(env, str):
            self.env_id, self.env_kwargs = env, dict(env_kwargs or {})
            self.env_fn = partial(make, env, **self.env_kwargs)
            return self.env_fn()
        if callable(env):
            first = env()
            self.env_fn = env
        elif isinstance(env, gym.Env) or is_parallel_env(env) or hasattr(env, "step"):
            first = env
            self.env_fn = self._no_copies
        else:
            raise RobustRLError(
                f"env must be an env id, a gymnasium.Env, a PettingZoo ParallelEnv or a "
                f"factory, got {env!r}")
        made = identity(first)
        self.env_id, self.env_kwargs = made if made is not None else (None, dict(env_kwargs or {}))
        if made is not None and not callable(env):
            self.env_fn = partial(make, self.env_id, **self.env_kwargs)
        return first

    def _no_copies(self) -> Any:
        raise RobustRLError(f"{self.name} needs several env copies; pass an env id, an env made "
                            "by robustrl.envs.make, or a factory (lambda: MyEnv()) instead of an "
                            "instance")

    def _read_env(self, env: Any) -> None:
        """Hook: what a learner reads from its first env beyond the spaces (agent names)."""

    def take_env(self) -> Any:
        """The first env (made while probing spaces), handed over once so it is not made
        twice; later calls make a new copy."""
        env, self._probe_env = self._probe_env, None
        return env if env is not None else self.env_fn()

    def close(self) -> None:
        """Close the envs this agent made (training copies, the first env); `act` still works
        and `learn` makes new envs and starts new episodes. Frees e.g. this process's libsumo
        simulation."""
        for name in ("envs", "env", "_probe_env"):
            env = getattr(self, name, None)
            if env is not None:
                env.close()
                setattr(self, name, None)
        if hasattr(self, "obs"):
            self.obs = None

    @classmethod
    def spaces_of(cls, env: Any) -> tuple[gym.Space, gym.Space, int]:
        """(observation space, action space, number of agents) this learner uses for `env`;
        raises its one-line refusal when it cannot handle them."""
        if is_parallel_env(env):
            raise RobustRLError(
                f"{cls.name} is a single-agent learner and {type(env).__name__} a PettingZoo "
                "ParallelEnv; use a multi-agent learner (`robustrl agents` lists them)")
        cls.check_spaces(env.observation_space, env.action_space)
        return env.observation_space, env.action_space, 1

    @classmethod
    def check_spaces(cls, observation_space: gym.Space, action_space: gym.Space) -> None:
        supported = cls.capabilities.action_spaces
        if callable(action_space) or callable(observation_space):  # per-agent space methods
            raise RobustRLError(
                f"{cls.name}: the env's spaces are methods (per agent, as in PettingZoo) but it "
                "has no `possible_agents`; give a ParallelEnv `possible_agents` and use a "
                "multi-agent learner, or give a Gymnasium env space attributes")
        if not isinstance(action_space, supported):
            names = ", ".join(t.__name__ for t in supported)
            raise RobustRLError(
                f"{cls.name} cannot handle action space {action_space}; it supports {names}"
                f" (`robustrl agents` lists what each agent supports)")
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

    # ----------------------------------------------------------------- training loops
    def off_policy_learn(self, total_steps: int, callback: Callback | None,
                         explore: Callable[[bool], tuple[Any, Any]]) -> None:
        """The single-env off-policy loop (SAC, Hybrid SAC). Each step `explore(random)` gives
        (env action, action to store) for `self.obs`, uniformly random while `num_steps <
        learning_starts`; the transition goes to `self.buffer`. After `learning_starts`,
        `gradient_steps` updates on replayed batches every `train_freq` steps; the callback
        gets the metrics every `log_interval` steps and at `total_steps`. A config with
        `n_envs` > 1 runs the vectorized loop instead (`_vector_off_policy_learn`)."""
        cfg = self.config
        if getattr(cfg, "n_envs", 1) > 1:
            return self._vector_off_policy_learn(total_steps, callback, explore, cfg.n_envs)
        if self.env is None:
            self.env = self.take_env()
        if self.obs is None:
            self.obs, _ = self.env.reset(seed=self.seed + self.stats.episodes)
        losses: dict[str, Any] = {}
        rate = StepRate(self.num_steps)
        while self.num_steps < total_steps:
            action, stored = explore(self.num_steps < cfg.learning_starts)
            next_obs, reward, terminated, truncated, _ = self.env.step(action)
            self.buffer.add(self.obs, stored, reward, next_obs, terminated)
            self.stats.step(reward, terminated or truncated)
            self.obs = next_obs
            if terminated or truncated:
                self.obs, _ = self.env.reset()
            self.num_steps += 1

            if self.num_steps >= cfg.learning_starts and self.num_steps % cfg.train_freq == 0:
                for _ in range(cfg.gradient_steps):
                    losses = self.update(self.buffer.sample(cfg.batch_size, self.rng, self.device))

            if callback is not None and (self.num_steps % cfg.log_interval == 0
                                         or self.num_steps == total_steps):
                metrics = {**self.stats.metrics(), **host_floats(losses),
                           "steps_per_second": rate(self.num_steps)}
                if callback(self, metrics) is False:
                    break

    def _vector_off_policy_learn(self, total_steps: int, callback: Callback | None,
                                 explore: Callable[[bool], tuple[Any, Any]], n: int) -> None:
        """`off_policy_learn` on `n` env copies stepped together (robustrl.core.vector,
        `cfg.vector_mode` sync or async): `explore` gets `self.obs` as a batch and gives one
        action per copy; every copy's transition is stored (next_obs is the ended episode's
        final observation, never the next one's start); `updates_per_step(cfg)` gradient
        updates per env step once `learning_starts` is reached (n of them per vector step at
        1.0). The last vector step stores only the transitions up to `total_steps`."""
        cfg = self.config
        if getattr(self, "envs", None) is None:
            self.envs = make_vector(self.env_fn, n, cfg.vector_mode, first=self.take_env())
            self.obs = None
        if self.obs is None:
            self.obs, _ = self.envs.reset(seed=self.seed + self.stats.episodes)
        if len(self.stats.returns) != n:
            episodes, self.stats = self.stats.episodes, EpisodeStats(n)
            self.stats.episodes = episodes
        losses: dict[str, Any] = {}
        rate, owed = StepRate(self.num_steps), 0.0
        while self.num_steps < total_steps:
            obs = self.obs
            action, stored = explore(self.num_steps < cfg.learning_starts)
            self.obs, next_obs, reward, terminated, done = vector_step(self.envs, action)
            take = min(n, total_steps - self.num_steps)
            self.buffer.add(obs[:take], stored[:take], reward[:take], next_obs[:take],
                            terminated[:take])
            self.stats.step(reward, done)
            before, self.num_steps = self.num_steps, self.num_steps + take
            if self.num_steps >= cfg.learning_starts:
                owed += take * updates_per_step(cfg)
                for _ in range(int(owed)):
                    losses = self.update(self.buffer.sample(cfg.batch_size, self.rng, self.device))
                owed -= int(owed)
            if callback is not None and (crossed(before, self.num_steps, cfg.log_interval)
                                         or self.num_steps == total_steps):
                metrics = {**self.stats.metrics(), **host_floats(losses),
                           "steps_per_second": rate(self.num_steps)}
                if callback(self, metrics) is False:
                    break

    def on_policy_learn(self, total_steps: int, callback: Callback | None, rollout_steps: int,
                        before_rollout: Callable[[], None] | None = None) -> None:
        """The on-policy loop (PPO, MAPPO/IPPO): `_collect()` a rollout of `rollout_steps` env
        steps, `update` on it, hand the callback the metrics; `before_rollout()` first."""
        rate = StepRate(self.num_steps)
        while self.num_steps < total_steps:
            if before_rollout is not None:
                before_rollout()
            batch = self._collect()
            self.num_steps += rollout_steps
            metrics = self.update(batch)
            if callback is not None:
                metrics = {**self.stats.metrics(), **host_floats(metrics),
                           "steps_per_second": rate(self.num_steps)}
                if callback(self, metrics) is False:
                    break

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

    def state_names(self) -> tuple[str, ...]:
        """`STATE`, or what this instance's config adds to it."""
        return self.STATE

    def state_dict(self, include_buffer: bool = False) -> dict[str, Any]:
        buffer = ("buffer",) if include_buffer and hasattr(self, "buffer") else ()
        return state_of(self, self.state_names() + buffer)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_state(self, state, self.state_names(), optional=("buffer",))

    # ----------------------------------------------------------------- live episodes
    def _training_envs(self) -> Any:
        """The env copies `learn` steps (None before it made them)."""
        envs = getattr(self, "envs", None)
        return envs if envs is not None else getattr(self, "env", None)

    def open_envs(self) -> None:
        """Make the training env copies as `learn` would, so a checkpoint's env state can be
        put into them before `learn` runs (it then keeps them and their episodes)."""
        self.env = self.take_env()

    def live_state(self) -> dict[str, Any] | None:
        """The episodes in progress: `LIVE` attributes, env copies' states (robustrl.envs.state),
        the action space's sampler; None when an env copy cannot be restored."""
        holder = self._training_envs()
        envs = [] if holder is None else get_states(holder)
        if envs is None:
            return None
        return {"envs": envs, "resets": getattr(holder, "resets", None),
                "attrs": {k: getattr(self, k) for k in self.LIVE if hasattr(self, k)},
                "action_space": space_rng_state(self.action_space)}

    def _restore_live(self, live: dict[str, Any]) -> None:
        if live["envs"]:
            self.open_envs()
            holder = self._training_envs()
            set_states(holder, live["envs"])
            if live["resets"] is not None:
                holder.resets = live["resets"]
        for key, value in live["attrs"].items():
            setattr(self, key, value)
        set_space_rng_state(self.action_space, live["action_space"])

    # ----------------------------------------------------------------- persistence
    def save(self, path: str | Path, include_buffer: bool = False) -> None:
        """Write the agent (and with `include_buffer`, everything to resume training) atomically.

        A checkpoint for resuming also holds the episodes in progress (`live_state`) and
        `exact`: whether resuming from it continues the run exactly."""
        live = self.live_state() if include_buffer else None
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
            "provenance": provenance(),
            **({"live": live, "exact": live is not None} if include_buffer else {}),
        }, path)

    def restore(self, checkpoint: dict[str, Any]) -> None:
        saved = (checkpoint.get("agent"), checkpoint.get("env_id"))
        other_env = None not in (saved[1], self.env_id) and saved[1] != self.env_id
        if saved[0] != self.name or other_env:  # e.g. config.toml edited after the checkpoint
            raise RobustRLError(f"the checkpoint holds {saved[0]} on {saved[1]}, the config asks "
                                f"for {self.name} on {self.env_id}; restore the config or train "
                                "into a new --out")
        self.load_state_dict(checkpoint["state"])
        self.num_steps = checkpoint["num_steps"]
        set_rng_state(self.rng, checkpoint["rng"])

    def resume(self, checkpoint: dict[str, Any]) -> bool:
        """`restore`, then the episodes in progress (their env copies made here); True when
        this continues the run exactly, False when `learn` will start new episodes."""
        self.restore(checkpoint)
        if checkpoint.get("live") is not None:
            self._restore_live(checkpoint["live"])
            set_rng_state(self.rng, checkpoint["rng"])  # making the env copies may draw
        return bool(checkpoint.get("exact", False))


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
    missing = sorted(set(AGENT_KEYS) - set(checkpoint)) if kind is None else []
    if missing:  # a foreign dict that happens to carry "format"
        raise RobustRLError(f"{path} is not a robustrl agent checkpoint (no {', '.join(missing)})")
    return checkpoint

