"""Synthetic preference labelers over known rewards, with controlled corruption.

A labeler compares two batches of items by their true per-step rewards and returns labels
P(a ≻ b) ∈ {1, 0, 0.5} (0.5 = tie), plus which labels a corruption stage changed, so that R3M's
detected outliers can be scored against the injected ones. Base labelers (rational/Boltzmann,
myopic, hierarchical) decide; corruptions (random flips, irrational flips) wrap a base. Specs
like ``"myopic:0.7+flip:0.2"`` build them from the command line (:func:`parse_labeler`).

Rewards come as numpy arrays of shape (B,) returns, (B, L) per-step rewards, or, for factor
labelers such as HERON's, (B, L, F) / (B, F) reward factors.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robustrl.core.errors import RobustRLError

__all__ = [
    "FactorLabeler",
    "Flip",
    "Irrational",
    "Labeler",
    "Rational",
    "labeler_names",
    "parse_labeler",
    "register_labeler",
]

Rng = np.random.Generator | int | None


class Labeler(ABC):
    """Compares item batches a and b by their true rewards."""

    @property
    def needs_factors(self) -> bool:
        """True for labelers that read (…, F) reward factors instead of a scalar reward."""
        return False

    @abstractmethod
    def label(
        self, rewards_a: np.ndarray, rewards_b: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return (labels (B,) in {1, 0, 0.5}, corrupted (B,) bool)."""

    def __call__(self, rewards_a: Any, rewards_b: Any, rng: Rng = None) -> np.ndarray:
        """Labels only; ``rng`` is a Generator or a seed (None = fresh entropy)."""
        return self.label(*_check(rewards_a, rewards_b, self.needs_factors), _rng(rng))[0]


class FactorLabeler(Labeler):
    """Interface for hierarchical labelers over reward factors (HERON's comparison rule).

    ``label`` receives (B, L, F) or (B, F) arrays of factor values, ordered by the user's
    importance ranking, and may return ties. Register an implementation with
    :func:`register_labeler` to make it available to :func:`parse_labeler`.
    """

    @property
    def needs_factors(self) -> bool:
        return True


def _rng(rng: Rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _check(a: Any, b: Any, factors: bool) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim == 0:
        raise RobustRLError(f"labeler: reward batches must match, got {a.shape} vs {b.shape}")
    if factors and a.ndim < 2:
        raise RobustRLError("labeler: this labeler needs reward factors, shape (B, F) or (B, L, F)")
    if not factors and a.ndim > 2:
        raise RobustRLError(f"labeler: expected (B,) or (B, L) rewards, got shape {a.shape}")
    return a, b


def _returns(r: np.ndarray, discount: float = 1.0) -> np.ndarray:
    """Segment returns; with discount γ < 1 step t of L is weighted γ^(L−t) (recent counts most)."""
    if r.ndim == 1:
        return r
    if discount == 1.0:
        return r.sum(1)
    return r @ discount ** np.arange(r.shape[1] - 1, -1, -1)


def _compare(gap: np.ndarray, temperature: float, rng: np.random.Generator) -> np.ndarray:
    if temperature == 0:
        return np.where(gap > 0, 1.0, np.where(gap < 0, 0.0, 0.5))
    p = 0.5 * (1 + np.tanh(gap / (2 * temperature)))  # σ(gap/T) without overflow
    return (rng.random(gap.shape) < p).astype(np.float64)


@dataclass
class Rational(Labeler):
    """Boltzmann-rational labeler: P(a ≻ b) = σ((R_a − R_b)/T) on (discounted) returns.

    T = 0 is the deterministic oracle (equal returns give a tie); discount < 1 is the myopic
    labeler of Lee et al. (B-Pref), which over-weights the end of a segment.
    """

    temperature: float = 0.0
    """Boltzmann temperature T ≥ 0 (spec uses 1, 2, 3)."""
    discount: float = 1.0
    """Myopia γ ∈ (0, 1]: step t of L weighted γ^(L−t) (spec uses 0.3, 0.5, 0.7)."""

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise RobustRLError(f"labeler: temperature must be >= 0, got {self.temperature}")
        if not 0 < self.discount <= 1:
            raise RobustRLError(f"labeler: discount must be in (0, 1], got {self.discount}")

    def label(
        self, rewards_a: np.ndarray, rewards_b: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        gap = _returns(rewards_a, self.discount) - _returns(rewards_b, self.discount)
        return _compare(gap, self.temperature, rng), np.zeros(gap.shape, bool)


def _flip(labels: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flip strict labels where mask; a tie stays a tie (it has no side to swap)."""
    mask = mask & (labels != 0.5)
    return np.where(mask, 1.0 - labels, labels), mask


@dataclass
class Flip(Labeler):
    """Flips each label of ``base`` independently with probability ``rate``."""

    rate: float
    """Flip probability p (spec sweeps 0–0.4)."""
    base: Labeler = field(default_factory=Rational)
    """Labeler whose labels get corrupted."""

    def __post_init__(self) -> None:
        if not 0 <= self.rate <= 1:
            raise RobustRLError(f"labeler flip: rate must be in [0, 1], got {self.rate}")

    @property
    def needs_factors(self) -> bool:
        return self.base.needs_factors

    def label(
        self, rewards_a: np.ndarray, rewards_b: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        labels, corrupted = self.base.label(rewards_a, rewards_b, rng)
        labels, flipped = _flip(labels, rng.random(labels.shape) < self.rate)
        return labels, corrupted ^ flipped


@dataclass
class Irrational(Labeler):
    """Flips the ⌊|B|^p⌋ labels with the largest true return gap in each batch of ``batch``.

    Models an annotator who gets the *obvious* comparisons wrong — the corruption that hurts
    BT most, since those pairs have the largest gradients. p = 1/2 with batches of 64 flips 8
    of 64 labels (12.5%).
    """

    power: float
    """Exponent p ∈ (0, 1] (spec uses 1/3, 1/2, 2/3)."""
    batch: int = 64
    """Batch size |B| the top pairs are counted in; consecutive pairs form a batch."""
    base: Labeler = field(default_factory=Rational)
    """Labeler whose labels get corrupted; must read scalar rewards."""

    def __post_init__(self) -> None:
        if not 0 < self.power <= 1:
            raise RobustRLError(f"labeler irrational: power must be in (0, 1], got {self.power}")
        if self.batch < 1:
            raise RobustRLError(f"labeler irrational: batch must be >= 1, got {self.batch}")
        if self.base.needs_factors:
            raise RobustRLError("labeler irrational: needs a base labeler over scalar rewards")

    def label(
        self, rewards_a: np.ndarray, rewards_b: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        labels, corrupted = self.base.label(rewards_a, rewards_b, rng)
        gap = np.abs(_returns(rewards_a) - _returns(rewards_b))
        n, bs = gap.shape[0], self.batch
        chunks = -(-n // bs)
        padded = np.full(chunks * bs, -np.inf)
        padded[:n] = gap
        # rank within each batch, largest gap first (stable: earlier pair wins a tie in gap)
        order = np.argsort(-padded.reshape(chunks, bs), axis=1, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(bs)[None, :].repeat(chunks, 0), axis=1)
        sizes = np.minimum(bs, n - bs * np.arange(chunks))
        k = np.floor(sizes.astype(np.float64) ** self.power + 1e-9).astype(int)
        top = (rank < k[:, None]).reshape(-1)[:n]
        labels, flipped = _flip(labels, top)
        return labels, corrupted ^ flipped


# ----------------------------------------------------------------------------------------
# Spec strings: "name[:value][,key=value...]" joined by "+", base first, corruptions after.

Factory = Callable[..., Labeler]


@dataclass(frozen=True)
class _Entry:
    factory: Factory
    corruption: bool
    help: str


_REGISTRY: dict[str, _Entry] = {
    "oracle": _Entry(lambda **kw: Rational(**kw), False, "oracle"),
    "boltzmann": _Entry(
        lambda v=1.0, **kw: Rational(temperature=v, **kw), False, "boltzmann:TEMPERATURE"
    ),
    "myopic": _Entry(lambda v=0.7, **kw: Rational(discount=v, **kw), False, "myopic:GAMMA"),
    "flip": _Entry(lambda v, base, **kw: Flip(v, base=base, **kw), True, "flip:RATE"),
    "irrational": _Entry(
        lambda v=0.5, base=None, **kw: Irrational(v, base=base, **kw), True, "irrational:POWER"
    ),
}


def register_labeler(name: str, factory: Factory, corruption: bool = False, help: str = "") -> None:
    """Make ``name`` available in spec strings (e.g. HERON's hierarchical labeler).

    A base factory is called as ``factory(value, **kwargs)``, a corruption as
    ``factory(value, base=labeler, **kwargs)``; ``value`` is the number after the colon, or
    the factory's default when the spec gives none.
    """
    _REGISTRY[name.lower()] = _Entry(factory, corruption, help or name)


def labeler_names() -> list[str]:
    """Spec forms :func:`parse_labeler` accepts."""
    return [e.help for e in _REGISTRY.values()]


def _number(text: str, what: str) -> float | int:
    try:
        return int(text) if text.lstrip("+-").isdigit() else float(text)
    except ValueError:
        raise RobustRLError(f"labeler spec: {what} must be a number, got {text!r}") from None


def parse_labeler(spec: str) -> Labeler:
    """Build a labeler from e.g. ``"flip:0.2"``, ``"boltzmann:1.0"``, ``"irrational:0.5"``,
    ``"myopic:0.7"``, ``"irrational:0.5,batch=32"`` or ``"myopic:0.5+flip:0.1"``."""
    labeler: Labeler | None = None
    for part in spec.split("+"):
        head, *opts = part.strip().split(",")
        name, _, value = head.partition(":")
        name = name.strip().lower()
        if name not in _REGISTRY:
            raise RobustRLError(
                f"unknown labeler {name!r} in {spec!r}; choose from: {', '.join(labeler_names())}"
            )
        entry = _REGISTRY[name]
        kwargs: dict[str, Any] = {}
        for opt in opts:
            key, eq, val = opt.partition("=")
            if not eq or not key.strip():
                raise RobustRLError(f"labeler spec: expected key=value, got {opt!r} in {spec!r}")
            kwargs[key.strip()] = _number(val.strip(), key.strip())
        args = [_number(value.strip(), name)] if value.strip() else []
        if entry.corruption:
            kwargs["base"] = labeler if labeler is not None else Rational()
        elif labeler is not None:
            raise RobustRLError(
                f"labeler spec {spec!r}: {name!r} is a base labeler; put it first, then "
                "corruptions (flip, irrational) joined by '+'"
            )
        try:
            labeler = entry.factory(*args, **kwargs)
        except TypeError as e:
            why = str(e).split(") ", 1)[-1]
            raise RobustRLError(
                f"labeler spec {part.strip()!r}: {why}; expected {entry.help}[,key=value]"
            ) from None
    assert labeler is not None
    return labeler
