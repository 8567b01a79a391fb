"""HERON's hierarchical comparison rule over ranked reward factors (Bukharin et al.).

Two samples (steps, segments of length L, or whole trajectories) are compared factor by
factor in the user's order of importance; the first factor whose values differ by more than
its margin decides, and if none does the pair is a tie:

    for level l = 1 … n:
        a = sign_l · f_l(i),  b = sign_l · f_l(j)
        if a > b + m_l: i ≻ j          if b > a + m_l: j ≻ i
    tie (skipped, or kept as a 0.5 label)

Margins are m_l = σ_l × std of factor l, the std taken over the batch being labelled or over
a reference buffer (:meth:`HeronLabeler.set_scale`). Each call records which level decided
each pair (:attr:`HeronLabeler.stats`): HERON's interpretability. This module is the one
place the rule lives; the labeler is registered as ``"heron"`` for :func:`parse_labeler`, and
the RL loop (:mod:`robustrl.reward.preference_loop`) feeds it the env's ``info["reward_factors"]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from robustrl.core.errors import RobustRLError
from robustrl.reward.labelers import FactorLabeler, register_labeler

__all__ = [
    "HeronConfig",
    "HeronLabeler",
    "LevelStats",
    "aggregate",
    "hierarchical_compare",
]

#: value of ``decided_by`` for a tie (no level decided)
TIE = -1


@dataclass
class HeronConfig:
    """The ``[heron]`` section of a run: how factors are ranked and compared."""

    ranking: tuple[str, ...] = ()
    """Factor names, most important first; () = the env's default ranking (its TOML spec).
    Factors left out are not compared."""
    sigmas: tuple[float, ...] = (0.1,)
    """Margin multipliers σ_l per level (m_l = σ_l × std of factor l); shorter than the
    ranking: the last value repeats. Original values: HalfCheetah (0.5, 0.1), Hopper
    (0.1, 0.2, 0.5), Ant (1, 1, .5, .5)."""
    first_margin: float | None = None
    """Override σ_1 (the first level's multiplier); 0 = any difference on the most important
    factor decides. None = sigmas[0]."""
    ties: Literal["skip", "soft"] = "skip"
    """Pairs no level decides: skip them, or keep them as 0.5 labels (soft BT target)."""
    scale: Literal["batch", "buffer"] = "batch"
    """Factor std for the margins: over the pairs being labelled, or over the whole segment
    buffer of the RL loop."""
    aggregate: Literal["sum", "mean"] = "sum"
    """How a segment's per-step factors become one value per factor."""

    def __post_init__(self) -> None:
        self.ranking = tuple(str(r) for r in self.ranking)
        self.sigmas = tuple(float(s) for s in self.sigmas)
        if not self.sigmas or any(not s >= 0 for s in self.sigmas):
            raise RobustRLError(f"heron.sigmas must be numbers >= 0, got {list(self.sigmas)}")
        if self.first_margin is not None and not self.first_margin >= 0:
            raise RobustRLError(f"heron.first_margin must be >= 0, got {self.first_margin}")
        if self.ties not in ("skip", "soft"):
            raise RobustRLError(f"heron.ties must be 'skip' or 'soft', got {self.ties!r}")
        if self.scale not in ("batch", "buffer"):
            raise RobustRLError(f"heron.scale must be 'batch' or 'buffer', got {self.scale!r}")
        if self.aggregate not in ("sum", "mean"):
            raise RobustRLError(f"heron.aggregate must be 'sum' or 'mean', got {self.aggregate!r}")

    def level_sigmas(self, n_levels: int) -> np.ndarray:
        """σ_l for each of ``n_levels`` levels (last value repeated, first_margin applied)."""
        s = np.array([self.sigmas[min(i, len(self.sigmas) - 1)] for i in range(n_levels)])
        if self.first_margin is not None and n_levels:
            s[0] = self.first_margin
        return s


def aggregate(factors: np.ndarray, how: str = "sum") -> np.ndarray:
    """(B, L, F) per-step factors → (B, F) per-segment values; (B, F) is returned as is."""
    factors = np.asarray(factors, np.float64)
    if factors.ndim == 2:
        return factors
    if factors.ndim != 3:
        raise RobustRLError(f"heron: factors must be (B, F) or (B, L, F), got {factors.shape}")
    return factors.mean(1) if how == "mean" else factors.sum(1)


def hierarchical_compare(
    a: np.ndarray, b: np.ndarray, margins: np.ndarray, signs: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The decision tree on aggregated factors a, b of shape (B, F), columns in rank order.

    Returns (labels (B,) with 1 = a ≻ b, 0 = b ≻ a, 0.5 = tie; decided_by (B,) the 0-based
    level that decided, or ``TIE``). ``signs`` (F,) is +1 where higher is better, −1 where
    lower is; None = all +1 (factors already oriented).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n, f = a.shape
    margins = np.broadcast_to(np.asarray(margins, np.float64), (f,))
    if signs is not None:
        s = np.asarray(signs, np.float64)
        a, b = a * s, b * s
    labels = np.full(n, 0.5)
    decided = np.full(n, TIE)
    open_ = np.ones(n, bool)
    for level in range(f):
        win = open_ & (a[:, level] > b[:, level] + margins[level])
        lose = open_ & (b[:, level] > a[:, level] + margins[level])
        labels[win], labels[lose] = 1.0, 0.0
        decided[win | lose] = level
        open_ &= ~(win | lose)
        if not open_.any():
            break
    return labels, decided


@dataclass
class LevelStats:
    """How many comparisons each level decided, accumulated over calls."""

    names: tuple[str, ...]
    """Factor name of each level."""
    decided: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """(n_levels,) counts of pairs decided at each level."""
    ties: int = 0
    """Pairs no level decided."""

    def __post_init__(self) -> None:
        if len(self.decided) != len(self.names):
            self.decided = np.zeros(len(self.names), np.int64)

    def add(self, decided_by: np.ndarray) -> None:
        self.decided += np.bincount(decided_by[decided_by >= 0], minlength=len(self.names))
        self.ties += int((decided_by == TIE).sum())

    @property
    def total(self) -> int:
        return int(self.decided.sum()) + self.ties

    def fractions(self) -> dict[str, float]:
        """{"level1_queue_length": share, ..., "ties": share} of all comparisons so far."""
        total = max(self.total, 1)
        out = {f"level{i + 1}_{n}": float(c) / total
               for i, (n, c) in enumerate(zip(self.names, self.decided))}
        out["ties"] = self.ties / total
        return out

    def table(self) -> str:
        """A Markdown table of the counts and shares per level."""
        total = max(self.total, 1)
        rows = ["| level | factor | decided | share |", "|---|---|---|---|"]
        for i, (n, c) in enumerate(zip(self.names, self.decided)):
            rows.append(f"| {i + 1} | {n} | {int(c)} | {c / total:.3f} |")
        rows.append(f"| - | tie | {self.ties} | {self.ties / total:.3f} |")
        return "\n".join(rows)


class HeronLabeler(FactorLabeler):
    """HERON as a labeler: (B, F) or (B, L, F) factor arrays in rank order → labels.

    ``signs`` orient the factors (+1 higher is better); margins are σ_l × std of each
    (aggregated) factor over the pair batch, or over the reference set by :meth:`set_scale`.
    Ties come back as 0.5; the RL loop drops them when ``ties = "skip"``.
    """

    def __init__(self, config: HeronConfig | None = None, signs: tuple[float, ...] = (),
                 names: tuple[str, ...] = ()) -> None:
        self.config = config or HeronConfig()
        self.signs = tuple(float(s) for s in signs)
        self.names = tuple(names)
        self.scale: np.ndarray | None = None
        self.stats = LevelStats(self.names)

    def set_scale(self, std: np.ndarray | None) -> None:
        """Per-factor std of the reference buffer (used when ``config.scale == "buffer"``)."""
        self.scale = None if std is None else np.asarray(std, np.float64)

    def margins(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """m_l = σ_l × std_l; std over the batch (both sides) or the buffer."""
        n_levels = a.shape[1]
        if self.config.scale == "buffer" and self.scale is not None:
            std = self.scale
        else:
            std = np.concatenate([a, b]).std(0)
        if len(std) != n_levels:
            raise RobustRLError(f"heron: {len(std)} factor scales for {n_levels} factors")
        return self.config.level_sigmas(n_levels) * std

    def label(
        self, rewards_a: np.ndarray, rewards_b: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        a = aggregate(rewards_a, self.config.aggregate)
        b = aggregate(rewards_b, self.config.aggregate)
        if self.signs and len(self.signs) != a.shape[1]:
            raise RobustRLError(f"heron: {len(self.signs)} directions for {a.shape[1]} factors")
        if self.signs:
            s = np.asarray(self.signs)
            a, b = a * s, b * s
        if len(self.stats.names) != a.shape[1]:  # names unknown (spec-string use): number them
            self.stats = LevelStats(self.names if len(self.names) == a.shape[1]
                                    else tuple(f"f{i + 1}" for i in range(a.shape[1])))
        labels, decided = hierarchical_compare(a, b, self.margins(a, b))
        self.stats.add(decided)
        return labels, np.zeros(labels.shape, bool)


def _heron_factory(v: float | None = None, **kw: float) -> HeronLabeler:
    """``heron`` / ``heron:SIGMA`` (one σ for every level), options first_margin=, mean=1."""
    cfg = HeronConfig()
    if v is not None:
        cfg.sigmas = (float(v),)
    if "first_margin" in kw:
        cfg.first_margin = float(kw.pop("first_margin"))
    if kw.pop("mean", 0):
        cfg.aggregate = "mean"
    if kw:
        raise TypeError(f") unknown option(s) {sorted(kw)} (heron takes first_margin=, mean=1)")
    cfg.__post_init__()
    return HeronLabeler(cfg)


register_labeler("heron", _heron_factory, help="heron:SIGMA")
