"""RL from preferences: any agent trains on a reward model learned from labelled segments.

One loop serves RLHF (``method = "learned"``: any labeler over the true reward, e.g.
``flip:0.2`` or ``irrational:0.5``), HERON (``method = "heron"``: the hierarchical labeler over
the env's ranked ``info["reward_factors"]``) and the weighted-sum baseline of the HERON paper
(``method = "weighted"``: r = Σ_l β^(l−1)·sign_l·f_l/std_l over the ranked factors, no model).

Design (one place computes the learned reward, the main process):

- :meth:`PreferenceLoop.attach` wraps every env the agent makes (its ``env_fn``, the env it
  already probed, and for multi-agent learners ``make_extra_env``, whose traffic copies are
  subprocess proxies living in the main process). The wrapper records each step's features
  (observation, action, next observation), env reward and factors, and returns the current
  reward model's reward in place of the env reward (``info["env_reward"]`` keeps the latter).
  So the reward model never leaves the process and a refresh takes effect at the next step.
  PPO's ``vector = "async"`` would copy the model into subprocesses: it is refused.
- Every ``refresh_every`` env steps (checked at the agent's log callback, i.e. between
  rollouts/updates) the loop draws ``queries`` pairs of length-L segments from its buffer of
  recent segments (optionally the ones the ensemble disagrees on most), labels them, and
  retrains the ensemble (warm start) with the shared preference trainer
  (:func:`robustrl.reward.train.fit_preferences`, any loss of :mod:`.losses`). Replay buffers
  of off-policy agents (``agent.buffer``) are then relabelled with the new model (PEBBLE).
- Before the first refresh the learned reward is 0.
- PettingZoo envs: ``multiagent = "agent"`` makes one segment stream per agent and one reward
  model shared by all agents (per-agent factors, e.g. each traffic light's own queue);
  ``"global"`` concatenates all agents' features, sums their factors and rewards, and gives
  each agent the learned team reward divided by the number of agents.

The env reward, its episode return and every factor's episode sum are logged by
:meth:`PreferenceLoop.metrics` (``env/return``, ``factor/<name>``, ``env/system_*``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch

from robustrl.core.errors import RobustRLError
from robustrl.core.io import atomic_torch_save
from robustrl.core.networks import NumpyMLP
from robustrl.core.normalizer import RunningMeanStd
from robustrl.reward.heron import HeronConfig, HeronLabeler, aggregate
from robustrl.reward.labelers import Labeler, Rational, parse_labeler
from robustrl.reward.losses import PairwiseLoss, make_loss
from robustrl.reward.models import RewardNet, RewardNetConfig
from robustrl.reward.train import Pairs, TrainConfig, fit_preferences

__all__ = [
    "FeatureEncoder",
    "LearnedRewardEnv",
    "ParallelLearnedRewardEnv",
    "PreferenceLoop",
    "RewardConfig",
    "RewardEnsemble",
    "SegmentBuffer",
    "build_loop",
]

Method = Literal["none", "learned", "heron", "weighted"]


@dataclass
class RewardConfig:
    """The ``[reward]`` section of a run: where the agent's reward comes from."""

    method: Method = "none"
    """none: the env reward; learned: a reward model from ``labeler``'s preferences over the
    true reward; heron: a reward model from HERON's hierarchical labels over the env's ranked
    factors (``[heron]`` section); weighted: Σ_l β^(l−1)·sign_l·f_l/std_l (no model)."""
    labeler: str = "oracle"
    """Labeler spec for ``learned`` (``robustrl.reward.labelers``): oracle, boltzmann:T,
    myopic:G, flip:P, irrational:P, ... joined by '+' (e.g. ``oracle+flip:0.2``)."""
    true_reward: Literal["env", "factors"] = "env"
    """What ``learned``'s labeler compares: the env reward, or the summed ranked factors
    Σ_l sign_l·f_l/std_l (classic RLHF on the factors, HERON's baseline)."""
    loss: str = "bt"
    """Preference loss (bt, r3m, margin-bt, scaled-bt, adaptive)."""
    loss_params: dict[str, Any] = field(default_factory=dict)
    """Loss parameters, e.g. ``{lam = 0.5}`` for r3m."""
    ensemble: int = 1
    """Reward models trained on the same pairs from different seeds; the reward is their mean."""
    active: bool = False
    """Query the pairs the ensemble disagrees on most (needs ensemble >= 2)."""
    active_pool: int = 4
    """Active selection scores active_pool × queries random candidate pairs."""
    features: tuple[str, ...] = ("obs", "act", "next_obs")
    """Reward-model input per step, from obs, act (one-hot if discrete), next_obs."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layers of each reward model."""
    segment_length: int = 25
    """Steps per segment L (1 = compare steps; an env's episode length = trajectories)."""
    buffer_segments: int = 1000
    """Most recent segments kept to draw queries from."""
    queries: int = 100
    """Pairs labelled per refresh."""
    max_queries: int = 0
    """Stop labelling after this many pairs in total (0 = no limit)."""
    first_refresh: int = 2000
    """Env steps before the first reward model (the learned reward is 0 until then)."""
    refresh_every: int = 5000
    """Env steps between refreshes (checked at the agent's log callback)."""
    epochs: int = 10
    """Passes over all labelled pairs per refresh (warm start from the previous model)."""
    lr: float = 1e-3
    batch_size: int = 64
    normalize: Literal["none", "std", "meanstd"] = "meanstd"
    """Learned reward scaled by its std (and centred) over the segment buffer at each refresh."""
    multiagent: Literal["agent", "global"] = "agent"
    """PettingZoo envs: one stream per agent with a shared model, or one global stream."""
    beta: float = 0.5
    """Weight ratio β of the ``weighted`` method."""
    seed: int = 0
    """Seed of pair sampling, labelers and reward-model initialisation (added to run.seed)."""

    def __post_init__(self) -> None:
        self.features = tuple(self.features)
        self.hidden = tuple(int(h) for h in self.hidden)
        if self.method not in ("none", "learned", "heron", "weighted"):
            raise RobustRLError(f"reward.method must be none, learned, heron or weighted, "
                                f"got {self.method!r}")
        bad = [f for f in self.features if f not in ("obs", "act", "next_obs")]
        if bad or not self.features:
            raise RobustRLError(f"reward.features: choose from obs, act, next_obs; got "
                                f"{list(self.features)}")
        for name in ("ensemble", "segment_length", "queries", "buffer_segments", "epochs",
                     "batch_size", "refresh_every", "active_pool"):
            if getattr(self, name) < 1:
                raise RobustRLError(f"reward.{name} must be >= 1, got {getattr(self, name)}")
        if self.active and self.ensemble < 2:
            raise RobustRLError("reward.active needs reward.ensemble >= 2 (disagreement)")


# ----------------------------------------------------------------------------------------
# Features: one encoder for the wrappers (one step) and replay relabelling (batches)


class FeatureEncoder:
    """Maps (obs, action, next_obs) to the reward model's input vector."""

    def __init__(self, obs_space: gym.Space, action_space: gym.Space,
                 parts: tuple[str, ...]) -> None:
        self.parts = parts
        self.obs_dim = int(np.prod(obs_space.shape))
        if isinstance(action_space, gym.spaces.Discrete):
            self.act_sizes: list[int] | None = [int(action_space.n)]
            self.act_dim = int(action_space.n)
        elif isinstance(action_space, gym.spaces.MultiDiscrete):
            self.act_sizes = [int(n) for n in action_space.nvec.ravel()]
            self.act_dim = sum(self.act_sizes)
        elif isinstance(action_space, gym.spaces.Box):
            self.act_sizes = None
            self.act_dim = int(np.prod(action_space.shape))
        else:
            raise RobustRLError(f"learned rewards support Box, Discrete and MultiDiscrete "
                                f"actions, not {type(action_space).__name__}")
        sizes = {"obs": self.obs_dim, "act": self.act_dim, "next_obs": self.obs_dim}
        self.dim = sum(sizes[p] for p in parts)

    def action(self, act: np.ndarray, batch: int) -> np.ndarray:
        if self.act_sizes is None:
            return np.asarray(act, np.float32).reshape(batch, self.act_dim)
        idx = np.asarray(act).reshape(batch, len(self.act_sizes)).astype(np.int64)
        out = np.zeros((batch, self.act_dim), np.float32)
        offset = 0
        for k, n in enumerate(self.act_sizes):
            out[np.arange(batch), offset + idx[:, k]] = 1.0
            offset += n
        return out

    def __call__(self, obs: Any, act: Any, next_obs: Any) -> np.ndarray:
        """Batched: obs (B, ...) → (B, dim)."""
        obs = np.asarray(obs, np.float32)
        b = obs.shape[0]
        parts = {"obs": lambda: obs.reshape(b, -1),
                 "act": lambda: self.action(act, b),
                 "next_obs": lambda: np.asarray(next_obs, np.float32).reshape(b, -1)}
        return np.concatenate([parts[p]() for p in self.parts], 1)


# ----------------------------------------------------------------------------------------
# Reward model: an ensemble of the shared RewardNet


class RewardEnsemble:
    """K RewardNets with fixed input normalization; rewards through numpy snapshots."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...], k: int, seed: int) -> None:
        torch.manual_seed(seed)
        self.nets = [RewardNet(RewardNetConfig(in_dim=in_dim, hidden=hidden)) for _ in range(k)]
        self.in_mean = np.zeros(in_dim, np.float32)
        self.in_std = np.ones(in_dim, np.float32)
        self.out_mean, self.out_std = 0.0, 1.0
        self.trained = False
        self._snap: list[NumpyMLP] = []

    def normalize_inputs(self, x: np.ndarray) -> np.ndarray:
        return np.clip((x - self.in_mean) / self.in_std, -10, 10).astype(np.float32)

    def members(self, x: np.ndarray) -> np.ndarray:
        """(K, ...) raw per-step rewards of each member for raw features x (..., D)."""
        if not self._snap:
            self._snap = [NumpyMLP(n.mlp) for n in self.nets]
        xn = self.normalize_inputs(x)
        return np.stack([m(xn)[..., 0] for m in self._snap])

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Normalized ensemble-mean reward of raw features x (B, D); 0 before training."""
        if not self.trained:
            return np.zeros(x.shape[0], np.float32)
        return ((self.members(x).mean(0) - self.out_mean) / self.out_std).astype(np.float32)

    def refreshed(self) -> None:
        self._snap = []
        self.trained = True

    def state_dict(self) -> dict[str, Any]:
        return {"nets": [n.state_dict() for n in self.nets], "in_mean": self.in_mean,
                "in_std": self.in_std, "out": (self.out_mean, self.out_std),
                "trained": self.trained}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for n, s in zip(self.nets, state["nets"]):
            n.load_state_dict(s)
        self.in_mean, self.in_std = state["in_mean"], state["in_std"]
        self.out_mean, self.out_std = state["out"]
        self.trained = state["trained"]
        self._snap = []


# ----------------------------------------------------------------------------------------
# Segments


class SegmentBuffer:
    """FIFO of complete length-L segments: features (N, L, D), env reward (N, L), factors
    (N, L, F) in rank order (raw values; signs are applied by the users)."""

    def __init__(self, capacity: int, length: int, dim: int, n_factors: int) -> None:
        self.capacity, self.length = capacity, length
        self.feats = np.zeros((capacity, length, dim), np.float32)
        self.rewards = np.zeros((capacity, length), np.float32)
        self.factors = np.zeros((capacity, length, n_factors), np.float32)
        self.pos = self.size = self.added = 0

    def add(self, feats: np.ndarray, rewards: np.ndarray, factors: np.ndarray) -> None:
        i = self.pos
        self.feats[i], self.rewards[i], self.factors[i] = feats, rewards, factors
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        self.added += 1

    def __len__(self) -> int:
        return self.size

    def state_dict(self) -> dict[str, Any]:
        n = self.size
        return {"feats": self.feats[:n].copy(), "rewards": self.rewards[:n].copy(),
                "factors": self.factors[:n].copy(), "pos": self.pos, "size": n,
                "added": self.added}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        n = s["size"]
        self.feats[:n], self.rewards[:n], self.factors[:n] = s["feats"], s["rewards"], s["factors"]
        self.pos, self.size, self.added = s["pos"], n, s["added"]


class _Stream:
    """The steps of one env (or one agent of it) since its last complete segment."""

    __slots__ = ("factors", "feats", "rewards")

    def __init__(self) -> None:
        self.feats: list[np.ndarray] = []
        self.rewards: list[float] = []
        self.factors: list[np.ndarray] = []


@dataclass
class _Episode:
    """Per-wrapper episode totals of what the env itself reports."""

    ret: float = 0.0
    length: int = 0
    factors: dict[str, float] = field(default_factory=dict)
    system: dict[str, list[float]] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------
# The loop


class PreferenceLoop:
    """Holds the reward model, segment buffer, labeler and schedule; see the module docstring.

    ``factor_names`` are the env's factors in rank order and ``signs`` their directions.
    """

    def __init__(self, cfg: RewardConfig, heron: HeronConfig | None,
                 obs_space: gym.Space, action_space: gym.Space, factor_names: tuple[str, ...],
                 signs: tuple[float, ...], n_agents: int = 1, seed: int = 0) -> None:
        self.cfg = cfg
        self.heron_cfg = heron or HeronConfig()
        self.factor_names = tuple(factor_names)
        self.signs = np.asarray(signs, np.float64)
        if len(self.signs) != len(self.factor_names) or not self.factor_names:
            raise RobustRLError("reward: need one direction per ranked factor")
        self.multi_global = n_agents > 1 and cfg.multiagent == "global"
        self.n_agents = n_agents
        self.encoder = FeatureEncoder(obs_space, action_space, cfg.features)
        dim = self.encoder.dim * (n_agents if self.multi_global else 1)
        self.rng = np.random.default_rng(seed + cfg.seed)
        self.model = RewardEnsemble(dim, cfg.hidden, cfg.ensemble, seed + cfg.seed)
        self.buffer = SegmentBuffer(cfg.buffer_segments, cfg.segment_length, dim,
                                    len(self.factor_names))
        self.factor_rms = RunningMeanStd((len(self.factor_names),))
        self.loss = make_loss(cfg.loss, **cfg.loss_params) if cfg.method in (
            "learned", "heron") else None
        if self.loss is not None and not isinstance(self.loss, PairwiseLoss):
            raise RobustRLError(f"reward.loss {cfg.loss!r} is not a pairwise loss; use bt, r3m, "
                                "margin-bt, scaled-bt or adaptive")
        self.labeler: Labeler | None = None
        self.ties = "soft"
        if cfg.method == "learned":
            self.labeler = parse_labeler(cfg.labeler)
            if self.labeler.needs_factors:
                raise RobustRLError("a factor labeler (heron) goes with reward.method = heron")
        elif cfg.method == "heron":
            self.labeler = HeronLabeler(self.heron_cfg, names=self.factor_names)
            self.ties = self.heron_cfg.ties
        self.weights = cfg.beta ** np.arange(len(self.factor_names)) * self.signs
        # labelled pairs: raw features of both sides, label, corrupted flag, clean label
        self.items = np.zeros((0, cfg.segment_length, dim), np.float32)
        self.labels = np.zeros(0, np.float32)
        self.corrupted = np.zeros(0, bool)
        self.num_steps = 0
        self.next_refresh = cfg.first_refresh
        self.refreshes = 0
        self.last: dict[str, float] = {}
        self._streams: dict[Any, _Stream] = {}
        self.episodes: deque[_Episode] = deque(maxlen=20)
        self._attached: dict[str, Any] = {}

    # ----------------------------------------------------------------- per step
    def factor_vector(self, factors: dict[str, float]) -> np.ndarray:
        try:
            return np.array([factors[n] for n in self.factor_names], np.float64)
        except KeyError as e:
            raise RobustRLError(f"reward: the env reports no factor {e} in "
                                f"info['reward_factors'] (it has {sorted(factors)}); fix "
                                "heron.ranking") from None

    def weighted(self, f: np.ndarray) -> np.ndarray:
        """Σ_l β^(l−1)·sign_l·f_l/std_l for f (..., F)."""
        return (f / self.factor_rms.std) @ self.weights

    def step(self, key: Any, feat: np.ndarray, env_reward: float, f: np.ndarray,
             done: bool) -> float:
        """Record one step of stream ``key`` and return the reward the agent gets."""
        self.factor_rms.update(f[None])
        if self.cfg.method == "weighted":
            return float(self.weighted(f))
        s = self._streams.get(key)
        if s is None:
            s = self._streams[key] = _Stream()
        s.feats.append(feat)
        s.rewards.append(env_reward)
        s.factors.append(f)
        if len(s.feats) == self.cfg.segment_length:
            self.buffer.add(np.stack(s.feats), np.asarray(s.rewards), np.stack(s.factors))
            self._streams[key] = _Stream()
        elif done:  # a partial segment at an episode end is dropped (segments stay in-episode)
            self._streams[key] = _Stream()
        return float(self.model.predict(feat[None])[0])

    def count(self, n: int = 1) -> None:
        self.num_steps += n

    # ----------------------------------------------------------------- refresh
    def true_rewards(self, idx: np.ndarray) -> np.ndarray:
        """(B, L) what ``learned``'s labeler compares."""
        if self.cfg.true_reward == "factors":
            return (self.buffer.factors[idx] / self.factor_rms.std) @ self.signs
        return self.buffer.rewards[idx]

    def _pairs(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        size = len(self.buffer)
        i = self.rng.integers(0, size, n)
        j = (i + self.rng.integers(1, size, n)) % size  # j != i
        return i, j

    def _query(self) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.cfg
        if not (cfg.active and self.model.trained):
            return self._pairs(cfg.queries)
        i, j = self._pairs(cfg.queries * cfg.active_pool)
        ra = self.model.members(self.buffer.feats[i]).sum(-1)  # (K, n)
        rb = self.model.members(self.buffer.feats[j]).sum(-1)
        p = 1 / (1 + np.exp(-np.clip(ra - rb, -30, 30)))
        top = np.argsort(-p.std(0), kind="stable")[:cfg.queries]
        return i[top], j[top]

    def _label(self, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, ...]:
        """(labels, corrupted, clean labels) of pairs (i, j)."""
        assert self.labeler is not None
        if self.cfg.method == "heron":
            assert isinstance(self.labeler, HeronLabeler)
            self.labeler.signs = tuple(self.signs)
            if self.heron_cfg.scale == "buffer":
                agg = aggregate(self.buffer.factors[:len(self.buffer)], self.heron_cfg.aggregate)
                self.labeler.set_scale((agg * self.signs).std(0))
            labels, corrupted = self.labeler.label(
                self.buffer.factors[i], self.buffer.factors[j], self.rng)
            return labels, corrupted, labels
        ra, rb = self.true_rewards(i), self.true_rewards(j)
        labels, corrupted = self.labeler.label(ra, rb, self.rng)
        clean, _ = Rational().label(ra, rb, self.rng)
        return labels, corrupted, clean

    def refresh(self) -> dict[str, float]:
        """Label new pairs and retrain the reward model; returns ``rm/`` metrics."""
        cfg = self.cfg
        out: dict[str, float] = {}
        budget = cfg.max_queries - len(self.labels) if cfg.max_queries else cfg.queries
        if len(self.buffer) >= 2 and budget > 0:
            i, j = self._query()
            i, j = i[:budget], j[:budget]
            labels, corrupted, clean = self._label(i, j)
            keep = labels != 0.5 if self.ties == "skip" else np.ones(len(labels), bool)
            if self.model.trained:  # accuracy on pairs the model has not seen, vs clean labels
                pred = self.model.members(self.buffer.feats[i]).mean(0).sum(-1) - \
                    self.model.members(self.buffer.feats[j]).mean(0).sum(-1)
                strict = clean != 0.5
                if strict.any():
                    out["rm/query_accuracy"] = float(((pred > 0) == (clean > 0.5))[strict].mean())
            i, j = i[keep], j[keep]
            pair_items = np.stack([self.buffer.feats[i], self.buffer.feats[j]], 1)
            self.items = np.concatenate([self.items, pair_items.reshape(-1, *pair_items.shape[2:])])
            self.labels = np.concatenate([self.labels, labels[keep].astype(np.float32)])
            self.corrupted = np.concatenate([self.corrupted, corrupted[keep]])
        if len(self.labels) == 0:
            return out
        # input normalization from the current buffer (the model is retrained on all pairs)
        flat = self.buffer.feats[:len(self.buffer)].reshape(-1, self.buffer.feats.shape[-1])
        self.model.in_mean = flat.mean(0)
        self.model.in_std = flat.std(0) + 1e-6
        items = torch.from_numpy(self.model.normalize_inputs(self.items))
        n = len(self.labels)
        pairs = Pairs(torch.arange(0, 2 * n, 2), torch.arange(1, 2 * n, 2),
                      label=torch.from_numpy(self.labels))
        losses, outliers = [], []
        for k, net in enumerate(self.model.nets):
            tc = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                             seed=int(self.rng.integers(2**31)) + k)
            res = fit_preferences(net, items, pairs, self.loss, tc)
            losses.append(res.losses[-1])
            if res.outliers is not None:
                outliers.append(res.outliers)
        self.model.refreshed()
        if cfg.normalize != "none":
            r = self.model.members(flat).mean(0)
            self.model.out_mean = float(r.mean()) if cfg.normalize == "meanstd" else 0.0
            self.model.out_std = float(r.std() + 1e-8)
        self.refreshes += 1
        out.update({"rm/pairs": float(n), "rm/loss": float(np.mean(losses)),
                    "rm/refreshes": float(self.refreshes),
                    "rm/label_noise": float(self.corrupted.mean())})
        if outliers and self.corrupted.any():
            flagged = outliers[0]
            out["rm/outlier_recall"] = float(flagged[self.corrupted].mean())
            out["rm/outlier_precision"] = float(self.corrupted[flagged].mean()) if \
                flagged.any() else 0.0
        if isinstance(self.labeler, HeronLabeler):
            out.update({f"heron/{k}": v for k, v in self.labeler.stats.fractions().items()})
        return out

    def relabel(self, agent: Any) -> None:
        """PEBBLE: recompute the rewards in an off-policy agent's replay buffer."""
        buf = getattr(agent, "buffer", None)
        if buf is None or not hasattr(buf, "rewards") or len(buf) == 0:
            return
        n = len(buf)
        obs, act, nxt = buf.obs[:n], buf.actions[:n], buf.next_obs[:n]
        if buf.rewards.ndim == 1:  # single agent
            buf.rewards[:n] = self.model.predict(self.encoder(obs, act, nxt))
            return
        m = buf.rewards.shape[1]
        per = self.encoder(obs.reshape(n * m, -1), act.reshape(n * m, -1),
                           nxt.reshape(n * m, -1)).reshape(n, m, -1)
        if self.multi_global:
            buf.rewards[:n] = (self.model.predict(per.reshape(n, -1)) / m)[:, None]
        else:
            buf.rewards[:n] = self.model.predict(per.reshape(n * m, -1)).reshape(n, m)

    def on_callback(self, agent: Any) -> dict[str, float]:
        """Called at each agent log event: refresh when due; returns metrics to log."""
        self.num_steps = max(self.num_steps, int(agent.num_steps))
        if self.cfg.method in ("learned", "heron") and self.num_steps >= self.next_refresh:
            while self.next_refresh <= self.num_steps:
                self.next_refresh += self.cfg.refresh_every
            self.last = self.refresh()
            self.relabel(agent)
        return self.metrics()

    # ----------------------------------------------------------------- logging
    def end_episode(self, ep: _Episode) -> None:
        self.episodes.append(ep)

    def metrics(self) -> dict[str, float]:
        out = dict(self.last)
        if self.episodes:
            eps = list(self.episodes)
            out["env/return"] = float(np.mean([e.ret for e in eps]))
            out["env/length"] = float(np.mean([e.length for e in eps]))
            for name in self.factor_names:
                out[f"factor/{name}"] = float(np.mean([e.factors.get(name, 0.0) for e in eps]))
            for key in eps[-1].system:
                vals = [np.mean(e.system[key]) if key != "system_arrived" else e.system[key][-1]
                        for e in eps if e.system.get(key)]
                out[f"env/{key}"] = float(np.mean(vals))
        return out

    # ----------------------------------------------------------------- wiring
    def wrap(self, env: Any) -> Any:
        if isinstance(env, (LearnedRewardEnv, ParallelLearnedRewardEnv)):
            return env
        if hasattr(env, "possible_agents"):
            return ParallelLearnedRewardEnv(env, self)
        return LearnedRewardEnv(env, self)

    def attach(self, agent: Any) -> None:
        """Route every env ``agent`` makes through this loop's wrapper."""
        if getattr(agent.config, "vector", "sync") == "async":
            raise RobustRLError("learned rewards are computed in the main process; use "
                                "vector=sync (async would copy the reward model into workers)")
        original = agent.env_fn
        self._attached = {"env_fn": original}
        agent.env_fn = lambda: self.wrap(original())
        if getattr(agent, "_probe_env", None) is not None:
            agent._probe_env = self.wrap(agent._probe_env)
        if hasattr(agent, "make_extra_env"):
            extra: Callable[[], Any] = agent.make_extra_env
            self._attached["make_extra_env"] = True
            agent.make_extra_env = lambda: self.wrap(extra())

    def detach(self, agent: Any) -> None:
        """Undo :meth:`attach`: later envs (evaluation) give the env reward again."""
        if "env_fn" in self._attached:
            agent.env_fn = self._attached["env_fn"]
        if self._attached.get("make_extra_env"):
            del agent.make_extra_env  # the instance attribute shadowed the method
        probe = getattr(agent, "_probe_env", None)
        if isinstance(probe, (LearnedRewardEnv, ParallelLearnedRewardEnv)):
            agent._probe_env = probe.env
        self._attached = {}

    # ----------------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "buffer": self.buffer.state_dict(),
                "factor_rms": self.factor_rms.state_dict(), "items": self.items,
                "labels": self.labels, "corrupted": self.corrupted,
                "num_steps": self.num_steps, "next_refresh": self.next_refresh,
                "refreshes": self.refreshes, "rng": self.rng.bit_generator.state,
                "last": self.last, "episodes": list(self.episodes),
                "heron_stats": (self.labeler.stats if isinstance(self.labeler, HeronLabeler)
                                else None)}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.model.load_state_dict(s["model"])
        self.buffer.load_state_dict(s["buffer"])
        self.factor_rms.load_state_dict(s["factor_rms"])
        self.items, self.labels, self.corrupted = s["items"], s["labels"], s["corrupted"]
        self.num_steps, self.next_refresh = s["num_steps"], s["next_refresh"]
        self.refreshes = s["refreshes"]
        self.last = dict(s.get("last", {}))
        self.episodes.extend(s.get("episodes", []))
        self.rng.bit_generator.state = s["rng"]
        if s.get("heron_stats") is not None and isinstance(self.labeler, HeronLabeler):
            self.labeler.stats = s["heron_stats"]

    def save(self, path: str | Path) -> None:
        atomic_torch_save(self.state_dict(), path)

    def load(self, path: str | Path) -> None:
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=False))


# ----------------------------------------------------------------------------------------
# Wrappers


def _system(ep: _Episode, info: dict[str, Any]) -> None:
    for k, v in info.items():
        if k.startswith("system_") and isinstance(v, (int, float, np.number)):
            ep.system.setdefault(k, []).append(float(v))


class LearnedRewardEnv(gym.Wrapper):
    """Gymnasium wrapper: the agent sees the loop's reward; ``info["env_reward"]`` keeps the
    env's own, and the step goes into the loop's segment buffer."""

    def __init__(self, env: gym.Env, loop: PreferenceLoop) -> None:
        super().__init__(env)
        self.loop = loop
        self._obs: np.ndarray | None = None
        self._ep = _Episode()

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self._obs = obs
        self._ep = _Episode()
        return obs, info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        loop, done = self.loop, bool(terminated or truncated)
        f = loop.factor_vector(info.get("reward_factors", {"env_reward": reward}))
        feat = loop.encoder(np.asarray(self._obs)[None], np.asarray(action)[None],
                            np.asarray(obs)[None])[0]
        learned = loop.step(id(self), feat, float(reward), f, done)
        loop.count()
        ep = self._ep
        ep.ret += float(reward)
        ep.length += 1
        for name, v in zip(loop.factor_names, f):
            ep.factors[name] = ep.factors.get(name, 0.0) + float(v)
        _system(ep, info)
        if done:
            loop.end_episode(ep)
            self._ep = _Episode()
        self._obs = obs
        info["env_reward"] = reward
        return obs, learned, terminated, truncated, info


class ParallelLearnedRewardEnv:
    """PettingZoo ParallelEnv wrapper with the same job as :class:`LearnedRewardEnv`;
    everything else (spaces, ``agents``, ``state()``) is the wrapped env's."""

    def __init__(self, env: Any, loop: PreferenceLoop) -> None:
        self.env = env
        self.loop = loop
        self._obs: dict[str, Any] = {}
        self._ep = _Episode()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, infos = self.env.reset(seed=seed, options=options)
        self._obs = dict(obs)
        self._ep = _Episode()
        return obs, infos

    def step(self, actions: dict[str, Any]):
        obs, rewards, terms, truncs, infos = self.env.step(actions)
        loop = self.loop
        done = not self.env.agents or all(terms.get(a, False) or truncs.get(a, False)
                                          for a in rewards)
        names = [a for a in self.env.possible_agents if a in rewards]
        feats, fs = [], []
        for a in names:
            info = infos.get(a, {})
            fs.append(loop.factor_vector(info.get("reward_factors", {"env_reward": rewards[a]})))
            nxt = obs.get(a, self._obs[a])
            feats.append(loop.encoder(np.asarray(self._obs[a])[None],
                                      np.asarray(actions[a])[None], np.asarray(nxt)[None])[0])
        env_total = float(sum(rewards[a] for a in names))
        if loop.multi_global:
            r = loop.step(id(self), np.concatenate(feats), env_total, np.sum(fs, 0), done)
            new = dict.fromkeys(names, r / len(names))
        else:
            new = {a: loop.step((id(self), a), feats[k], float(rewards[a]), fs[k], done)
                   for k, a in enumerate(names)}
        loop.count()
        ep = self._ep
        ep.ret += env_total
        ep.length += 1
        for name, v in zip(loop.factor_names, np.sum(fs, 0)):
            ep.factors[name] = ep.factors.get(name, 0.0) + float(v)
        _system(ep, next(iter(infos.values()), {}))
        if done:
            loop.end_episode(ep)
            self._ep = _Episode()
        for a in names:
            infos.setdefault(a, {})["env_reward"] = rewards[a]
        self._obs.update(obs)
        return obs, {**rewards, **new}, terms, truncs, infos


def build_loop(reward: RewardConfig, heron: HeronConfig | None, agent: Any,
               seed: int = 0) -> PreferenceLoop:
    """A loop for ``agent`` (already built), attached to it. Factors, their order and
    directions come from ``heron.ranking`` or the env's registered spec; an unregistered env
    has the single factor ``env_reward``."""
    heron = heron or HeronConfig()
    specs: dict[str, float] = {"env_reward": 1.0}
    default: tuple[str, ...] = ("env_reward",)
    if getattr(agent, "env_id", None):
        from robustrl.envs import spec

        s = spec(agent.env_id)
        if s.factors:
            specs.update({f.name: f.sign for f in s.factors})
            default = s.ranking or tuple(f.name for f in s.factors)
    ranking = heron.ranking or default
    unknown = [r for r in ranking if r not in specs]
    if unknown:
        raise RobustRLError(f"heron.ranking names unknown factors {unknown}; this env has "
                            f"{sorted(specs)}")
    loop = PreferenceLoop(reward, heron, agent.observation_space, agent.action_space,
                          tuple(ranking), tuple(specs[r] for r in ranking),
                          n_agents=getattr(agent, "n_agents", 1), seed=seed)
    loop.attach(agent)
    return loop
