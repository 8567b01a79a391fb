"""The inner maximisation shared by adversarial observations, ERNIE and the Lipschitz metric.

    delta* = argmax_{||delta / obs_scale|| <= eps}  D(f(s + delta), f(s))

solved by K steps of projected gradient ascent from a random start. The ball lives in
*normalized* observation units: `obs_scale` (the per-dimension std of the agent's observation
normalizer) maps it to raw units, so one eps means the same thing on every dimension and for
every agent. `D` is computed per sample (never a norm over the whole batch, which would grow
with sqrt(batch)), and summed only to get every sample's gradient in one backward pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch

Distance = Literal["kl", "l2", "nll"] | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Norm = Literal["linf", "l2"]
PolicyFn = Callable[[torch.Tensor], torch.Tensor]


def distance_per_sample(out: torch.Tensor, target: torch.Tensor,
                        distance: Distance = "l2") -> torch.Tensor:
    """D(out, target) per sample: KL(softmax(target) || softmax(out)), squared L2, or "nll":
    -log softmax(out) at the clean greedy action argmax(target) (an attack on a discrete policy
    or Q-network that pushes the perturbed choice away from the clean one)."""
    if callable(distance):
        return distance(out, target)
    if distance == "nll":
        chosen = target.argmax(-1, keepdim=True)
        nll = -torch.log_softmax(out, dim=-1).gather(-1, chosen).squeeze(-1)
        return nll.flatten(1).sum(1) if nll.dim() > 1 else nll
    if distance == "kl":
        log_p = torch.log_softmax(target, dim=-1)
        log_q = torch.log_softmax(out, dim=-1)
        kl = (log_p.exp() * (log_p - log_q)).sum(-1)
        return kl.flatten(1).sum(1) if kl.dim() > 1 else kl
    if distance == "l2":
        return (out - target).pow(2).flatten(1).sum(1)
    raise ValueError(f"distance must be 'kl', 'l2', 'nll' or a callable, got {distance!r}")


def _norm(z: torch.Tensor, norm: Norm) -> torch.Tensor:
    flat = z.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


def _per_sample(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return x.view(-1, *([1] * (like.dim() - 1)))


def _project(z: torch.Tensor, eps: float, norm: Norm) -> torch.Tensor:
    if norm == "linf":
        return z.clamp(-eps, eps)
    factor = (eps / _norm(z, "l2").clamp_min(1e-12)).clamp(max=1.0)
    return z * _per_sample(factor, z)


def _random_start(shape: torch.Size, eps: float, norm: Norm, like: torch.Tensor,
                  generator: torch.Generator | None) -> torch.Tensor:
    def rand(fn):
        return fn(shape, generator=generator, device="cpu").to(like)

    if norm == "linf":
        return (2 * rand(torch.rand) - 1) * eps
    direction = rand(torch.randn)
    radius = eps * torch.rand(shape[0], generator=generator).to(like)
    return direction / _per_sample(_norm(direction, "l2").clamp_min(1e-12), direction) \
        * _per_sample(radius, direction)


def pgd_attack(
    policy_fn: PolicyFn,
    obs: torch.Tensor,
    eps: float,
    steps: int = 3,
    norm: Norm = "linf",
    distance: Distance = "l2",
    obs_scale: torch.Tensor | np.ndarray | float | None = None,
    step_size: float | None = None,
    *,
    restarts: int = 1,
    keep_best: bool = False,
    generator: torch.Generator | None = None,
    create_graph: bool = False,
) -> torch.Tensor:
    """Return the perturbation delta (raw units, shape of `obs`) that maximises D per sample.

    `obs` is a batch (leading batch dimension); `obs_scale` is per dimension (broadcast
    over the batch) or per sample (the shape of `obs`). Each of the `steps` ascent steps moves the
    normalized perturbation z = delta / obs_scale by `step_size` (default 2.5 * eps / steps,
    enough to reach the boundary from anywhere in the ball) along sign(grad) for linf or the
    normalized gradient for l2, then projects back onto ||z|| <= eps.

    `restarts` random starts run as one batch; with `keep_best` (what an attack wants) each
    sample gets the iterate with the highest D over all starts and steps, so with a fixed
    `step_size` and generator more steps or restarts never lower D (the random starts are
    drawn one restart after the other: a run with fewer is a prefix of one with more).
    Without it, the last iterate of the first start is returned (ERNIE's follower).

    With `create_graph=True` the ascent is kept in the autograd graph, so delta is a
    differentiable function of the policy's parameters (ERNIE's Stackelberg gradient); otherwise
    delta is detached and the policy's `.grad` is never touched.
    """
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
    if eps < 0 or steps < 0 or restarts < 1:
        raise ValueError(f"need eps >= 0, steps >= 0, restarts >= 1; got eps={eps}, "
                         f"steps={steps}, restarts={restarts}")
    if create_graph and (keep_best or restarts > 1):
        raise ValueError("create_graph keeps one differentiable ascent: no keep_best/restarts")
    if eps == 0 or steps == 0:
        return torch.zeros_like(obs)
    scale = (torch.ones((), dtype=obs.dtype, device=obs.device) if obs_scale is None
             else torch.as_tensor(obs_scale, dtype=obs.dtype, device=obs.device))
    alpha = 2.5 * eps / steps if step_size is None else step_size
    n, repeat = obs.shape[0], (restarts, *([1] * (obs.dim() - 1)))
    x = obs if restarts == 1 else obs.repeat(repeat)
    per_sample = scale.dim() == obs.dim() and scale.shape[0] == n > 1
    x_scale = scale.repeat(repeat) if per_sample else scale
    with torch.enable_grad():
        target = policy_fn(obs)
        if not create_graph:
            target = target.detach()
        if restarts > 1:
            target = target.repeat(restarts, *([1] * (target.dim() - 1)))
        z = torch.cat([_random_start(obs.shape, eps, norm, obs, generator)
                       for _ in range(restarts)]).requires_grad_(True)
        best_z, best_d = z.detach().clone(), None
        for i in range(steps + 1):  # the last pass only scores the final iterate
            if i == steps and not keep_best:
                break
            d = distance_per_sample(policy_fn(x + z * x_scale), target, distance)
            if keep_best:  # the loss of the current iterate: track the best per sample
                best_d, best_z = _better(d.detach(), z.detach(), best_d, best_z)
            if i == steps:
                break
            (grad,) = torch.autograd.grad(d.sum(), z, create_graph=create_graph)
            if norm == "linf":
                step = grad.sign()
            else:
                step = grad / _per_sample(_norm(grad, "l2").clamp_min(1e-12), grad)
            z = _project(z + alpha * step, eps, norm)
            if not create_graph:
                z = z.detach().requires_grad_(True)
    if keep_best:
        d_all = best_d.view(restarts, n)
        pick = d_all.argmax(0)  # the first restart wins ties: fewer restarts is a prefix
        z = best_z.view(restarts, n, *obs.shape[1:])[pick, torch.arange(n)]
    else:
        z = z[:n]
    delta = z * scale
    return delta if create_graph else delta.detach()


def _better(d: torch.Tensor, z: torch.Tensor, best_d: torch.Tensor | None,
            best_z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample, keep (d, z) where d beats the best so far (ties keep the earlier)."""
    if best_d is None:
        return d, z.clone()
    win = d > best_d
    return torch.where(win, d, best_d), torch.where(_per_sample(win, z), z, best_z)


def policy_device(policy_fn: Callable) -> tuple[torch.device, torch.dtype]:
    """Device and float dtype of a policy that is (or wraps) an `nn.Module`, or is a method of
    an object with a torch `device` (an agent's `policy_output`), else CPU float32."""
    module = policy_fn if isinstance(policy_fn, torch.nn.Module) else getattr(
        policy_fn, "__self__", None)
    if isinstance(module, torch.nn.Module):
        for p in module.parameters():
            if p.is_floating_point():
                return p.device, p.dtype
    device = getattr(module, "device", None)
    return (device if isinstance(device, torch.device) else torch.device("cpu")), torch.float32


def empirical_lipschitz(
    policy_fn: PolicyFn,
    observations: torch.Tensor | np.ndarray,
    eps: float,
    steps: int = 10,
    norm: Norm = "linf",
    obs_scale: torch.Tensor | np.ndarray | float | None = None,
    *,
    step_size: float | None = None,
    seed: int = 0,
    batch_size: int = 4096,
) -> float:
    """Empirical local Lipschitz constant: max over the batch of ||f(s+d) - f(s)||_2 / ||d||.

    d is found by PGD maximising ||f(s+d) - f(s)||^2 in the eps-ball; ||d|| is measured in
    normalized units (d / obs_scale) with the ball's norm. The result is a lower bound on the
    policy's local Lipschitz constant around the given observations (ERNIE's quantity).
    """
    if eps <= 0:
        raise ValueError(f"eps must be > 0 to estimate a Lipschitz constant, got {eps}")
    device, dtype = policy_device(policy_fn)
    obs = torch.as_tensor(np.asarray(observations) if not torch.is_tensor(observations)
                          else observations).to(device=device, dtype=dtype)
    scale = None if obs_scale is None else torch.as_tensor(obs_scale, dtype=dtype, device=device)
    generator = torch.Generator().manual_seed(seed)
    best = 0.0
    for chunk in obs.split(batch_size):
        delta = pgd_attack(policy_fn, chunk, eps, steps, norm, "l2", scale, step_size,
                           generator=generator)
        with torch.no_grad():
            change = (policy_fn(chunk + delta) - policy_fn(chunk)).flatten(1).norm(dim=1)
            size = _norm(delta if scale is None else delta / scale, norm)
            ratio = torch.where(size > 0, change / size.clamp_min(1e-12), torch.zeros_like(size))
            best = max(best, float(ratio.max()))
    return best
