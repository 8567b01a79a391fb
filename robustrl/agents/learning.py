"""What `Agent.learn` adds around every learner's own loop, so the library behaves like the CLI:
the progress bar, user callbacks that receive a `LearnInfo` and may stop training, and torch's
thread count (one thread unless the user chose otherwise; small networks run fastest on one).

`Agent.__init_subclass__` wraps each learner's `learn` with `wrap_learn` once, so a learner
only implements `learn(total_steps, callback)` and gets the rest.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from robustrl.core.progress import progress as progress_bar


@dataclass(frozen=True)
class LearnInfo:
    """What a user callback sees at each log event."""

    agent: Any
    step: int
    """Env steps trained so far (`agent.num_steps`)."""
    total_steps: int
    metrics: dict[str, float]
    """The row written to metrics.csv by the CLI (episode_return, losses, steps_per_second)."""


UserCallback = Callable[[LearnInfo], bool | None]

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
_THREADS_AT_IMPORT = torch.get_num_threads()


def apply_threads(threads: int | None) -> None:
    """`threads` > 0: use that many; 0: leave torch's setting; None: one thread unless the user
    chose (an OMP/MKL_NUM_THREADS variable, or torch.set_num_threads called after robustrl was
    imported)."""
    if threads is None:
        chosen = (any(v in os.environ for v in THREAD_VARS)
                  or torch.get_num_threads() != _THREADS_AT_IMPORT)
        threads = 0 if chosen else 1
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def wrap_learn(learn: Callable[..., Any]) -> Callable[..., Any]:
    """`learn(total_steps, callback)` -> `learn(total_steps, callback=None, *, progress=False,
    callbacks=(), threads=None)`."""

    @functools.wraps(learn)
    def wrapper(self: Any, total_steps: int, callback: Callable[..., Any] | None = None, *,
                progress: bool = False, callbacks: Sequence[UserCallback] = (),
                threads: int | None = None) -> Any:
        if getattr(self, "_learning", False):  # a learner's learn calling its parent's
            return learn(self, total_steps, callback)
        apply_threads(threads)
        bar = (progress_bar(total_steps, desc=f"{self.name} {self.env_id or ''}".strip(),
                            initial=self.num_steps) if progress else None)

        def combined(agent: Any, metrics: dict[str, float]) -> bool | None:
            stop = callback is not None and callback(agent, metrics) is False
            if bar is not None:
                bar.update(agent.num_steps - bar.n)
                if "episode_return" in metrics:
                    bar.set_postfix(ret=f"{metrics['episode_return']:.1f}", refresh=False)
            info = LearnInfo(agent, agent.num_steps, total_steps, metrics)
            for fn in callbacks:
                stop = fn(info) is False or stop
            return False if stop else None

        wanted = callback is not None or bar is not None or bool(callbacks)
        self._learning = True
        try:
            return learn(self, total_steps, combined if wanted else None)
        finally:
            self._learning = False
            if bar is not None:
                bar.close()

    return wrapper


__all__ = ["LearnInfo", "UserCallback", "apply_threads", "wrap_learn"]
