"""Bookkeeping every learner's `learn` loop shares: the call's throughput and when an
interval comes due."""

from __future__ import annotations

import time


class StepRate:
    """Env steps per second since a `learn` call began (the metrics' `steps_per_second`)."""

    def __init__(self, num_steps: int):
        self.start_step, self.start_time = num_steps, time.perf_counter()

    def __call__(self, num_steps: int) -> float:
        elapsed = time.perf_counter() - self.start_time
        return (num_steps - self.start_step) / max(elapsed, 1e-9)


def crossed(before: int, after: int, every: int) -> bool:
    """Whether a step counter going from `before` to `after` passed a multiple of `every` (a
    learner stepping n_envs copies at once can jump over the multiple itself)."""
    return after // every > before // every
