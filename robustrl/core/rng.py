"""The random streams a Gymnasium space samples from (Dict/Tuple spaces hold one per part),
saved and restored so a resumed run's random exploration continues where it stopped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def _generators(space: Any) -> Iterator[Any]:
    """`space`'s own generator (when seeded) and its subspaces', depth first."""
    yield getattr(space, "_np_random", None)
    parts = getattr(space, "spaces", None)
    if isinstance(parts, dict):
        parts = list(parts.values())
    for part in parts if isinstance(parts, (list, tuple)) else ():
        yield from _generators(part)


def space_rng_state(space: Any) -> list[dict[str, Any] | None]:
    return [None if g is None else g.bit_generator.state for g in _generators(space)]


def set_space_rng_state(space: Any, state: list[dict[str, Any] | None]) -> None:
    if any(g is None for g in _generators(space)) and any(s is not None for s in state):
        space.seed(0)  # not sampled here yet: give every part a generator to restore into
    for saved, generator in zip(state, list(_generators(space))):
        if saved is not None and generator is not None:
            generator.bit_generator.state = saved
