"""Log-densities shared by the learners whose actions are squashed by tanh (SAC, Hybrid SAC, CQL).

Kept in one place because the tanh correction is easy to get numerically wrong: written naively
as log(1 - tanh(u)^2) it is -inf once tanh(u) rounds to +-1, which happens for |u| > ~9.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)
LOG_2 = math.log(2)


def squashed_gaussian_log_prob(u: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor,
                               reduce: bool = True) -> torch.Tensor:
    """Log-density of a = tanh(u), u ~ Normal(mean, exp(log_std)).

    The tanh correction log(1 - tanh(u)^2) is written stably as 2 (log 2 - u - softplus(-2u)).
    Summed over the last axis unless `reduce=False` (per dimension: Hybrid SAC sums the
    dimensions of each discrete choice's parameters itself).
    """
    gaussian = -0.5 * ((u - mean) / log_std.exp()) ** 2 - log_std - 0.5 * LOG_2PI
    correction = 2 * (LOG_2 - u - F.softplus(-2 * u))
    if reduce:
        return gaussian.sum(-1) - correction.sum(-1)
    return gaussian - correction
