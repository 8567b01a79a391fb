"""Env wrappers that give an agent the learned reward: each step goes into the preference
loop's segment buffer and the agent sees the loop's reward in place of the env's own
(``info["env_reward"]`` keeps the latter, for logging and for evaluation against it).

A run applies :meth:`PreferenceLoop.wrap <robustrl.reward.preference_loop.PreferenceLoop.wrap>`
to every env of the agent's factory; evaluation envs stay unwrapped. The wrappers know the
loop only through :class:`RewardSource`, so this module does not import the loop's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from robustrl.reward.segment_model import FeatureEncoder

__all__ = ["EpisodeTotals", "LearnedRewardEnv", "ParallelLearnedRewardEnv", "RewardSource",
           "episode_metrics"]


@dataclass
class EpisodeTotals:
    """Per-wrapper episode totals of what the env itself reports (logged by the loop)."""

    ret: float = 0.0
    length: int = 0
    factors: dict[str, float] = field(default_factory=dict)
    system: dict[str, list[float]] = field(default_factory=dict)

    def add(self, reward: float, names: tuple[str, ...], f: np.ndarray,
            info: dict[str, Any]) -> None:
        """One step: the env reward, the ranked factors ``f`` and the ``system_*`` values."""
        self.ret += reward
        self.length += 1
        for name, v in zip(names, f):
            self.factors[name] = self.factors.get(name, 0.0) + float(v)
        for k, v in info.items():
            if k.startswith("system_") and isinstance(v, (int, float, np.number)):
                self.system.setdefault(k, []).append(float(v))


def episode_metrics(episodes: list[EpisodeTotals], factor_names: tuple[str, ...]
                    ) -> dict[str, float]:
    """Means over ``episodes`` of the env return and length, each factor's episode sum, and
    each ``system_*`` value (its per-episode mean; ``system_arrived`` counts, so its last)."""
    if not episodes:
        return {}
    out = {"env/return": float(np.mean([e.ret for e in episodes])),
           "env/length": float(np.mean([e.length for e in episodes]))}
    for name in factor_names:
        out[f"factor/{name}"] = float(np.mean([e.factors.get(name, 0.0) for e in episodes]))
    for key in episodes[-1].system:
        vals = [np.mean(e.system[key]) if key != "system_arrived" else e.system[key][-1]
                for e in episodes if e.system.get(key)]
        out[f"env/{key}"] = float(np.mean(vals))
    return out


class RewardSource(Protocol):
    """What a wrapper needs of the loop: encode a step, record it, get the agent's reward."""

    factor_names: tuple[str, ...]
    multi_global: bool
    encoder: FeatureEncoder

    def factor_vector(self, factors: dict[str, float]) -> np.ndarray: ...

    def step(self, key: Any, feat: np.ndarray, env_reward: float, f: np.ndarray,
             done: bool) -> float: ...

    def count(self, n: int = 1) -> None: ...

    def end_episode(self, ep: EpisodeTotals) -> None: ...


class LearnedRewardEnv(gym.Wrapper):
    """Gymnasium wrapper: the agent sees the loop's reward; ``info["env_reward"]`` keeps the
    env's own, and the step goes into the loop's segment buffer."""

    def __init__(self, env: gym.Env, loop: RewardSource) -> None:
        super().__init__(env)
        self.loop = loop
        self._obs: np.ndarray | None = None
        self._ep = EpisodeTotals()

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self._obs = obs
        self._ep = EpisodeTotals()
        return obs, info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        loop, done = self.loop, bool(terminated or truncated)
        f = loop.factor_vector(info.get("reward_factors", {"env_reward": reward}))
        feat = loop.encoder(np.asarray(self._obs)[None], np.asarray(action)[None],
                            np.asarray(obs)[None])[0]
        learned = loop.step(id(self), feat, float(reward), f, done)
        loop.count()
        self._ep.add(float(reward), loop.factor_names, f, info)
        if done:
            loop.end_episode(self._ep)
            self._ep = EpisodeTotals()
        self._obs = obs
        info["env_reward"] = reward
        return obs, learned, terminated, truncated, info


class ParallelLearnedRewardEnv:
    """PettingZoo ParallelEnv wrapper with the same job as :class:`LearnedRewardEnv`;
    everything else (spaces, ``agents``, ``state()``) is the wrapped env's."""

    def __init__(self, env: Any, loop: RewardSource) -> None:
        self.env = env
        self.loop = loop
        self._obs: dict[str, Any] = {}
        self._ep = EpisodeTotals()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, infos = self.env.reset(seed=seed, options=options)
        self._obs = dict(obs)
        self._ep = EpisodeTotals()
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
        self._ep.add(env_total, loop.factor_names, np.sum(fs, 0), next(iter(infos.values()), {}))
        if done:
            loop.end_episode(self._ep)
            self._ep = EpisodeTotals()
        for a in names:
            infos.setdefault(a, {})["env_reward"] = rewards[a]
        self._obs.update(obs)
        return obs, {**rewards, **new}, terms, truncs, infos
