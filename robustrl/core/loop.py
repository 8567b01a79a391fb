"""Bookkeeping every learner's `learn` loop shares: the call's throughput, when an interval
comes due, and an epoch's shuffled minibatches."""

from __future__ import annotations

import time
from typing import Any

import torch


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


def updates_per_step(cfg: Any) -> float:
    """Gradient updates per env step of an off-policy learner stepping n_envs > 1 copies:
    `cfg.updates_per_step`, or by default the single-env loop's gradient_steps / train_freq."""
    ratio = getattr(cfg, "updates_per_step", None)
    return ratio if ratio is not None else getattr(cfg, "gradient_steps", 1) / cfg.train_freq


def minibatches(batch: dict[str, torch.Tensor],
                n_minibatches: int) -> dict[str, torch.Tensor]:
    """One epoch's shuffled minibatches of `batch` (tensors sharing their first axis): a fresh
    permutation cut into `n_minibatches` equal slices (the remainder is left out), each tensor
    returned as (n_minibatches, size // n_minibatches, ...); minibatch i is `v[i]`.

    Each tensor is permuted once per epoch: indexing every tensor per minibatch cost more than
    a small network's forward pass, and per-minibatch statistics (PPO's advantage
    normalization) become one batched op over the minibatch axis.
    """
    first = next(iter(batch.values()))
    size = len(first)
    mb = size // n_minibatches
    # drawn on the CPU generator whatever the tensors' device, so runs match across devices
    perm = torch.randperm(size)[:mb * n_minibatches].to(first.device)
    return {k: v.index_select(0, perm).view(n_minibatches, mb, *v.shape[1:])
            for k, v in batch.items()}
