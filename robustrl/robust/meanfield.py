"""Distributionally robust mean-field targets: the worst case over a KL ball around the
neighbours' mean-action distribution (ERNIE's mean-field variant for many homogeneous agents).

In mean-field Q-learning (Yang et al. 2018) agent i's critic sees its neighbours through their
mean action p (for discrete actions, a distribution over the action set). The robust target
replaces the expectation over the neighbours' behaviour by its worst case in a KL ball:

    V_rho = min_{q : KL(q || p) <= rho}  E_{b ~ q}[ v(b) ]

where v(b) is the critic's value when a neighbour takes action b (the others at their mean).
By convex duality the minimiser is an exponential tilt q_beta(b) ∝ p(b) exp(-v(b) / beta),
with the temperature beta > 0 chosen so that KL(q_beta || p) = rho; `kl_worst_case` finds it
by bisection on log(beta), batched, with no per-sample Python loop. Its `q` is the worst-case
mean action the critic target then uses.

The learner that uses it is `robustrl.agents.mfq` (agent `mfq`, `dro_rho > 0`), with
the neighbour graph of traffic grids from `robustrl.envs.traffic.neighbours`.
"""

from __future__ import annotations

import torch


def _kl(q: torch.Tensor, log_p: torch.Tensor) -> torch.Tensor:
    return (q * (torch.log(q.clamp_min(1e-30)) - log_p)).sum(-1)


@torch.no_grad()
def kl_worst_case(values: torch.Tensor, probs: torch.Tensor, rho: float,
                  iters: int = 60) -> tuple[torch.Tensor, torch.Tensor]:
    """(worst-case expected value, worst-case distribution q) over the last axis.

    values, probs: (..., K); probs sum to 1 on the last axis; rho >= 0 the KL radius.
    """
    if rho < 0:
        raise ValueError(f"rho must be >= 0, got {rho}")
    values = values.to(torch.float64)
    p = (probs.to(torch.float64) / probs.sum(-1, keepdim=True))
    log_p = torch.log(p.clamp_min(1e-300))
    support = p > 0
    big = torch.finfo(torch.float64).max
    v_min = torch.where(support, values, big).amin(-1, keepdim=True)
    # beta -> 0: all of q on the cheapest actions p supports, KL = -log p(argmin)
    at_min = support & (values <= v_min + 1e-12)
    p_min = torch.where(at_min, p, 0.0).sum(-1, keepdim=True)
    corner_ok = (-torch.log(p_min)).squeeze(-1) <= rho
    corner = torch.where(at_min, p, 0.0) / p_min

    def tilt(log_beta: torch.Tensor) -> torch.Tensor:
        logits = log_p - (values - v_min) / log_beta.exp()[..., None]
        return torch.softmax(torch.where(support, logits, -torch.inf), -1)

    spread = torch.where(support, values, v_min).amax(-1) - v_min.squeeze(-1)
    scale = spread.clamp_min(1e-12).log()
    lo, hi = scale - 30.0, scale + 30.0  # KL(q_beta || p) falls from its corner value to 0
    for _ in range(iters):
        mid = (lo + hi) / 2
        too_far = _kl(tilt(mid), log_p) > rho
        lo, hi = torch.where(too_far, mid, lo), torch.where(too_far, hi, mid)
    q = torch.where(corner_ok[..., None], corner, tilt(hi))
    return (q * torch.where(support, values, 0.0)).sum(-1), q


__all__ = ["kl_worst_case"]
