"""RL from preferences: any agent trains on a reward model learned from labelled segments.

One loop serves RLHF (``method = "learned"``: any labeler over the true reward, e.g.
``flip:0.2`` or ``irrational:0.5``), HERON (``method = "heron"``: the hierarchical labeler over
the env's ranked ``info["reward_factors"]``) and the weighted-sum baseline of the HERON paper
(``method = "weighted"``: r = Σ_l β^(l−1)·sign_l·f_l/std_l over the ranked factors, no model).

Design (one place computes the learned reward, the main process; the loop never touches an
agent's attributes):

- :func:`build_loop` needs only the env id and the spaces the learner will use, so a run
  builds it before the agent. The run's env factory passes every env the agent makes through
  :meth:`PreferenceLoop.wrap` (:mod:`.wrappers`), which records each step's features
  (observation, action, next observation), env reward and factors, and returns the current
  reward model's reward in place of the env reward. So the reward model never leaves the
  process and a refresh takes effect at the next step. PPO's ``vector = "async"`` would copy
  the model into subprocesses: :func:`check_vectorization` refuses it.
- Every ``refresh_every`` env steps (checked at the agent's log callback, i.e. between
  rollouts/updates) the loop draws ``queries`` pairs of length-L segments from its buffer of
  recent segments (optionally the ones the ensemble disagrees on most), labels them, and
  retrains the ensemble (warm start) with the shared preference trainer
  (:func:`robustrl.reward.train.fit_preferences`, any loss of :mod:`.losses`). Replay buffers
  of off-policy agents are then relabelled with the new model (PEBBLE) through their public
  ``agent.buffer.relabel(reward_fn)`` with :meth:`PreferenceLoop.learned_rewards`.
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch

from robustrl.core.errors import RobustRLError
from robustrl.core.io import atomic_torch_save
from robustrl.core.normalizer import RunningMeanStd
from robustrl.envs import spec
from robustrl.reward.heron import HeronConfig, HeronLabeler, aggregate
from robustrl.reward.labelers import Labeler, Rational, parse_labeler
from robustrl.reward.losses import PairwiseLoss, make_loss
from robustrl.reward.segment_model import FeatureEncoder, RewardEnsemble, SegmentBuffer
from robustrl.reward.train import Pairs, TrainConfig, fit_preferences
from robustrl.reward.wrappers import (
    EpisodeTotals,
    LearnedRewardEnv,
    ParallelLearnedRewardEnv,
    episode_metrics,
)

__all__ = ["PreferenceLoop", "RewardConfig", "build_loop", "check_vectorization"]


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


def check_vectorization(vector: str) -> None:
    """Refuse an agent's ``vector = "async"`` under a learned reward: the reward model lives
    in this process, and async workers would step copies of it that no refresh reaches."""
    if vector == "async":
        raise RobustRLError("learned rewards are computed in the main process; use "
                            "vector=sync (async would copy the reward model into workers)")


class _Stream:
    """The steps of one env (or one agent of it) since its last complete segment."""

    __slots__ = ("factors", "feats", "rewards")

    def __init__(self) -> None:
        self.feats: list[np.ndarray] = []
        self.rewards: list[float] = []
        self.factors: list[np.ndarray] = []


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
        self.obs_ndim = len(obs_space.shape)
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
        self.episodes: deque[EpisodeTotals] = deque(maxlen=20)

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
        self.model.fit_inputs(flat)
        items = torch.from_numpy(self.model.inputs(self.items))
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

    def learned_rewards(self, obs: np.ndarray, actions: np.ndarray,
                        next_obs: np.ndarray) -> np.ndarray:
        """The current model's rewards of a batch of transitions: the ``reward_fn`` a replay
        buffer is relabelled with (PEBBLE). obs (N, ...) → (N,); with an agent axis, obs
        (N, M, ...) → (N, M): each agent's own reward, or under ``multiagent = "global"`` the
        team's reward divided by M, as the wrappers gave it."""
        n = obs.shape[0]
        if obs.ndim == self.obs_ndim + 1:  # single agent
            return self.model.predict(self.encoder(obs, actions, next_obs))
        m = obs.shape[1]
        per = self.encoder(obs.reshape(n * m, -1), actions.reshape(n * m, -1),
                           next_obs.reshape(n * m, -1)).reshape(n, m, -1)
        if self.multi_global:
            team = self.model.predict(per.reshape(n, -1)) / m
            return np.repeat(team[:, None], m, axis=1)
        return self.model.predict(per.reshape(n * m, -1)).reshape(n, m)

    def on_callback(self, agent: Any) -> dict[str, float]:
        """Called at each agent log event: refresh when due; returns metrics to log."""
        self.num_steps = max(self.num_steps, int(agent.num_steps))
        if self.cfg.method in ("learned", "heron") and self.num_steps >= self.next_refresh:
            while self.next_refresh <= self.num_steps:
                self.next_refresh += self.cfg.refresh_every
            self.last = self.refresh()
            # PEBBLE: relabel the replay buffer of learners that declare it stores env actions
            # (maddpg and hybrid_sac keep their critics' action format and keep stale rewards)
            buffer = getattr(agent, "buffer", None)
            if agent.capabilities.relabel and buffer is not None and len(buffer) > 0:
                buffer.relabel(self.learned_rewards)
        return self.metrics()

    # ----------------------------------------------------------------- logging
    def end_episode(self, ep: EpisodeTotals) -> None:
        self.episodes.append(ep)

    def metrics(self) -> dict[str, float]:
        """The last refresh's ``rm/`` metrics and the env's own over the recent episodes."""
        return {**self.last, **episode_metrics(list(self.episodes), self.factor_names)}

    # ----------------------------------------------------------------- wiring
    def wrap(self, env: Any) -> Any:
        """``env`` giving this loop's reward (a Gymnasium or PettingZoo parallel env); an env
        already wrapped is returned as is."""
        if isinstance(env, (LearnedRewardEnv, ParallelLearnedRewardEnv)):
            return env
        if hasattr(env, "possible_agents"):
            return ParallelLearnedRewardEnv(env, self)
        return LearnedRewardEnv(env, self)

    # ----------------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "buffer": self.buffer.state_dict(),
                "factor_rms": self.factor_rms.state_dict(), "items": self.items,
                "labels": self.labels, "corrupted": self.corrupted,
                "num_steps": self.num_steps, "next_refresh": self.next_refresh,
                "refreshes": self.refreshes, "rng": self.rng.bit_generator.state,
                "last": self.last, "episodes": [asdict(e) for e in self.episodes],
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
        self.episodes.extend(EpisodeTotals(**e) for e in s.get("episodes", []))
        self.rng.bit_generator.state = s["rng"]
        if s.get("heron_stats") is not None and isinstance(self.labeler, HeronLabeler):
            self.labeler.stats = s["heron_stats"]

    def save(self, path: str | Path) -> None:
        atomic_torch_save(self.state_dict(), path)

    def load(self, path: str | Path) -> None:
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=False))


def build_loop(reward_cfg: RewardConfig, heron_cfg: HeronConfig | None, *,
               env_id: str | None, observation_space: gym.Space, action_space: gym.Space,
               n_agents: int, seed: int = 0) -> PreferenceLoop:
    """The loop of a run, built before its agent: ``observation_space``, ``action_space`` and
    ``n_agents`` are the spaces the learner will use (``AgentClass.spaces_of(env)``; for
    multi-agent learners the shared per-agent spaces). Factors, their order and directions come
    from ``heron.ranking`` or the spec of ``env_id``; an env not made from an id (None) has the
    single factor ``env_reward``."""
    heron_cfg = heron_cfg or HeronConfig()
    specs: dict[str, float] = {"env_reward": 1.0}
    default: tuple[str, ...] = ("env_reward",)
    if env_id:
        s = spec(env_id)
        if s.factors:
            specs.update({f.name: f.sign for f in s.factors})
            default = s.ranking or tuple(f.name for f in s.factors)
    ranking = heron_cfg.ranking or default
    unknown = [r for r in ranking if r not in specs]
    if unknown:
        raise RobustRLError(f"heron.ranking names unknown factors {unknown}; this env has "
                            f"{sorted(specs)}")
    return PreferenceLoop(reward_cfg, heron_cfg, observation_space, action_space,
                          tuple(ranking), tuple(specs[r] for r in ranking),
                          n_agents=n_agents, seed=seed)
