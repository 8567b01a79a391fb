"""ERNIE (Bukharin et al., NeurIPS 2023): adversarial Lipschitz regularization of a policy or
critic, with the Stackelberg (leader-follower) gradient.

For a network f (policy logits / mean action, Q-values, a value) and a batch of its inputs x:

    delta*(theta) = argmax_{||delta / scale|| <= eps}  D(f(x + delta), f(x))     (the follower)
    R(theta)      = mean over samples of  D(f(x + delta*), f(x))
    loss          = RL loss + lam * R(theta)                                   (the leader)

delta* comes from K projected-gradient ascent steps from a random start in the ball. D is per
sample: KL(pi(.|x) || pi(.|x + delta)) for categorical logits, squared L2 otherwise (the
original code took one Frobenius norm over the whole batch, which grows with sqrt(batch)).

Plain mode (`stackelberg=False`): delta* is a constant, dR/dtheta = dR/dtheta|_delta.
Stackelberg mode: the K ascent steps stay in the autograd graph (`create_graph=True`), so the
leader steps with the total derivative  dR/dtheta + (d delta*/d theta)^T dR/d delta. Both modes
run the same ascent (rule, step size, random start), so with the same generator they find the
same delta* and the same R; the Stackelberg term is their only difference. The shared default
rule is a normalized-gradient step (a step of length alpha in the ball's norm), because a sign
step has a zero derivative and could not carry the Stackelberg term.

Units: the agents perturb their networks' *normalized* inputs (after the running mean/std
observation normalizer), so eps is in units of each dimension's std; agents without a
normalizer (sac) perturb raw observations. `scale` (per input dimension) maps the ball to
input units; a scale of 0 holds a dimension fixed (agent one-hot ids, an agent's own action).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from robustrl.core.errors import RobustRLError
from robustrl.perturb.pgd import distance_per_sample

Fn = Callable[[torch.Tensor], torch.Tensor]
Target = Literal["actor", "critic"]


@dataclass
class RobustConfig:
    """The `robust` sub-config of every learner with `capabilities.ernie` (`--set
    robust.method=ernie --set robust.lam=1`)."""

    method: Literal["none", "ernie"] = "none"
    """none: the plain learner (nothing added, no cost); ernie: add lam * R(theta) to the loss
    of the networks named by `target`."""
    lam: float = 0.1
    """Weight lambda of the regularizer (the paper grids 1e-4 ... 1e-1; the unweighted R is
    logged as robust/reg)."""
    eps: float = 0.1
    """Radius of the perturbation ball, in normalized observation units (std of each input
    dimension; raw units where the agent has no normalizer (sac) or normalize_obs = false)."""
    norm: Literal["linf", "l2"] = "linf"
    """Norm of the ball: linf (each dimension within eps) or l2 (per sample, all dimensions)."""
    steps: int = 1
    """K, projected-gradient ascent steps of the follower (1-5; cost grows linearly)."""
    step_size: float | None = None
    """Ascent step alpha, in the ball's units (raw gradient steps: alpha times the gradient);
    None: 2.5 * eps / steps for sign/normalized steps (reaches the boundary from anywhere in
    the ball), 1.0 for raw gradient steps."""
    ascent: Literal["auto", "sign", "normalized", "gradient"] = "auto"
    """Ascent direction: sign(grad) (linf FGSM/PGD; plain mode only), grad / ||grad|| per sample
    in the ball's norm (max |grad_i| for linf, ||grad||_2 for l2: a step of length alpha in the
    ball's norm), or the raw gradient. auto: normalized in both modes, so plain and Stackelberg
    ERNIE differ only by the Stackelberg gradient term (a sign step has a zero derivative)."""
    stackelberg: bool = False
    """True: differentiate through the unrolled ascent (leader = policy, follower =
    perturbation; a few extra backward passes); False: delta* treated as a constant."""
    target: Literal["actor", "critic", "both"] = "actor"
    """Network(s) regularized: actor (the acting network: policy logits / action means, or
    IDQN's per-agent Q), critic (value / Q; for multi-agent learners the centralized critic),
    or both."""
    distance: Literal["auto", "kl", "l2"] = "auto"
    """D for the actor: auto is KL for categorical policies, squared L2 for action means and
    Q-values; critics always use squared L2."""
    perturb_other_actions: bool = False
    """Also perturb the other agents' actions in a centralized critic's input (robustness to
    malicious agents; maddpg, idqn with mixer=qcombo); needs target critic or both."""
    action_eps: float | None = None
    """Radius for those actions, in the critic's action units (maddpg: [-1, 1] or one-hot;
    idqn: one-hot); None: eps."""

    def __post_init__(self) -> None:
        if self.lam < 0:
            raise RobustRLError(f"robust.lam must be >= 0, got {self.lam}")
        if self.eps <= 0:
            raise RobustRLError(f"robust.eps must be > 0 (the ball's radius), got {self.eps}")
        if self.steps < 1:
            raise RobustRLError(f"robust.steps must be >= 1 (K ascent steps), got {self.steps}")
        if self.step_size is not None and self.step_size <= 0:
            raise RobustRLError(f"robust.step_size must be > 0 or none, got {self.step_size}")
        if self.action_eps is not None and self.action_eps < 0:
            raise RobustRLError(f"robust.action_eps must be >= 0 or none, got {self.action_eps}")
        if self.stackelberg and self.ascent == "sign":
            raise RobustRLError("robust.ascent=sign has a zero derivative, so stackelberg=true "
                                "would give the plain gradient; use ascent=normalized or gradient")

    @property
    def rule(self) -> Literal["sign", "normalized", "gradient"]:
        """The ascent rule `auto` resolves to: the same in plain and Stackelberg mode."""
        return "normalized" if self.ascent == "auto" else self.ascent

    @property
    def alpha(self) -> float:
        if self.step_size is not None:
            return self.step_size
        return 1.0 if self.rule == "gradient" else 2.5 * self.eps / self.steps


def _per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


def _norm(z: torch.Tensor, norm: str) -> torch.Tensor:
    flat = z.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


def _project(z: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return z.clamp(-eps, eps)
    return z * _per_sample((eps / _norm(z, "l2").clamp_min(1e-12)).clamp(max=1.0), z)


def _start(x: torch.Tensor, cfg: RobustConfig, mask: torch.Tensor | None,
           generator: torch.Generator | None) -> torch.Tensor:
    """Random start in the ball (uniform in the cube for linf, random direction and radius for
    l2), zero on held dimensions. D has its minimum at delta = 0, where its gradient vanishes."""
    rand = torch.rand if cfg.norm == "linf" else torch.randn
    z = rand(x.shape, generator=generator).to(x)
    if cfg.norm == "linf":
        z = (2 * z - 1) * cfg.eps
    if mask is not None:
        z = z * mask
    if cfg.norm == "l2":
        radius = cfg.eps * torch.rand(x.shape[0], generator=generator).to(x)
        z = z * _per_sample(radius / _norm(z, "l2").clamp_min(1e-12), z)
    return z


def perturbation(f: Fn, x: torch.Tensor, cfg: RobustConfig, distance="l2",
                 scale: torch.Tensor | None = None, clean: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """delta* (input units, shape of `x`): K ascent steps on D(f(x + delta), f(x)) per sample.

    In Stackelberg mode delta* is a differentiable function of f's parameters (pass the
    undetached `clean = f(x)` to share its graph); otherwise it is detached. `x` has a leading
    batch axis; the ball is per sample over all other axes.
    """
    create_graph = cfg.stackelberg
    # held dims (scale 0) start at 0; an all-ones mask changes nothing, so no host read decides
    mask = None if scale is None else (scale != 0).to(x.dtype)
    rule, alpha = cfg.rule, cfg.alpha
    with torch.enable_grad():
        target = f(x) if clean is None else clean
        if not create_graph:
            target = target.detach()
        z = _start(x.detach(), cfg, mask, generator).requires_grad_(True)
        for _ in range(cfg.steps):
            out = f(x + (z if scale is None else z * scale))
            if out.shape != target.shape:
                raise ValueError(f"clean output has shape {tuple(target.shape)}, "
                                 f"f(x) {tuple(out.shape)}")
            d = distance_per_sample(out, target, distance).sum()
            (grad,) = torch.autograd.grad(d, z, create_graph=create_graph)
            if rule == "sign":
                step = grad.sign()
            elif rule == "normalized":
                step = grad / _per_sample(_norm(grad, cfg.norm).clamp_min(1e-12), grad)
            else:
                step = grad
            z = _project(z + alpha * step, cfg.eps, cfg.norm)
            if not create_graph:
                z = z.detach().requires_grad_(True)
    delta = z if scale is None else z * scale
    return delta if create_graph else delta.detach()


def regularizer(f: Fn, x: torch.Tensor, cfg: RobustConfig, distance="l2",
                scale: torch.Tensor | None = None, clean: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """R(theta) = mean_s D(f(x + delta*), f(x)), unweighted, differentiable in f's parameters
    (the total Stackelberg derivative when `cfg.stackelberg`). `distance`: "kl" (logits),
    "l2", or a callable (out, target) -> per-sample values. `clean`: f(x) when the loss has
    already computed it with its graph (saves a forward and a backward pass)."""
    x = x.detach()
    if clean is None:
        clean = f(x)
    delta = perturbation(f, x, cfg, distance, scale, clean, generator)
    return distance_per_sample(f(x + delta), clean, distance).mean()


class Ernie:
    """An agent's handle on the regularizer: which of its networks are regularized, the
    lam * R terms for their losses, and the logged values (robust/reg, robust/reg_<target>).

    Agents build one with `attach` and add, only when `bool(self.ernie)`:
        loss = loss + self.ernie.penalty("actor", self.net.actor, obs, dims=self.obs_dim)
    """

    def __init__(self, cfg: RobustConfig, logits: bool):
        self.cfg = cfg
        self.on = cfg.method == "ernie"
        self.targets = {"actor": self.on and cfg.target in ("actor", "both"),
                        "critic": self.on and cfg.target in ("critic", "both")}
        self.actor_distance = "kl" if logits and cfg.distance in ("auto", "kl") else "l2"
        self._values: dict[str, list[torch.Tensor]] = {"actor": [], "critic": []}
        self._scales: dict[tuple[Any, ...], torch.Tensor] = {}

    def __bool__(self) -> bool:
        return self.on

    def scale(self, like: torch.Tensor, perturbed: int, actions: int = 0) -> torch.Tensor:
        """Per-dimension scale of inputs `like` whose last axis is laid out [perturbed | actions |
        held fixed], on their device and dtype: 1 on the first `perturbed` dims, action_eps /
        eps on the next `actions` (0 unless perturb_other_actions), 0 on the rest."""
        total = like.shape[-1]
        key = (perturbed, total, actions, like.device, like.dtype)
        if key not in self._scales:
            cfg = self.cfg
            act = (cfg.action_eps if cfg.action_eps is not None else cfg.eps) / cfg.eps
            s = torch.zeros(total, dtype=like.dtype, device=like.device)
            s[:perturbed] = 1.0
            if cfg.perturb_other_actions:
                s[perturbed:perturbed + actions] = act
            self._scales[key] = s
        return self._scales[key]

    def penalty(self, target: Target, f: Fn, x: torch.Tensor, dims: int | None = None,
                scale: torch.Tensor | None = None,
                clean: torch.Tensor | None = None) -> torch.Tensor | float:
        """lam * R for network `f` on inputs `x` (batch first); 0.0 when `target` is not
        regularized. `dims`: perturb only the first `dims` features of the last axis; `clean`:
        f(x) as the loss computed it (reused, with its graph)."""
        if not self.targets[target]:
            return 0.0
        if dims is not None and dims < x.shape[-1]:
            scale = self.scale(x, dims)
        distance = self.actor_distance if target == "actor" else "l2"
        reg = regularizer(f, x, self.cfg, distance, scale, clean)
        self._values[target].append(reg.detach())
        return self.cfg.lam * reg

    def metrics(self) -> dict[str, torch.Tensor]:
        """Mean R per target since the last call (robust/reg: their sum); {} when off. 0-dim
        tensors, read back to the host only when logged (no sync per update on a GPU)."""
        if not self.on:
            return {}
        out = {f"robust/reg_{t}": torch.stack(v).mean() for t, v in self._values.items() if v}
        if out:
            out["robust/reg"] = sum(out.values())
        self._values = {"actor": [], "critic": []}
        return out


def attach(cfg: RobustConfig, agent: str, *, logits: bool, critic: bool = True,
           critic_actions: bool = False) -> Ernie:
    """Check that `agent` supports what `cfg` asks for and return its `Ernie` handle.

    logits: the actor outputs categorical logits (KL applies); critic: the agent has a critic
    to regularize; critic_actions: its critic takes other agents' actions."""
    if cfg.method == "ernie":
        if cfg.target != "actor" and not critic:
            raise RobustRLError(f"robust.target={cfg.target}: {agent} has no critic to "
                                "regularize; use robust.target=actor")
        if cfg.distance == "kl" and not logits:
            raise RobustRLError(f"robust.distance=kl needs a categorical policy; {agent}'s actor "
                                "outputs action means or Q-values here, use auto or l2")
        if cfg.perturb_other_actions and not critic_actions:
            raise RobustRLError("robust.perturb_other_actions needs a centralized critic that "
                                f"takes the agents' actions (maddpg, idqn with mixer=qcombo); "
                                f"{agent} has none here")
        if cfg.perturb_other_actions and cfg.target == "actor":
            raise RobustRLError("robust.perturb_other_actions perturbs the critic's input; set "
                                "robust.target=critic or both")
    return Ernie(cfg, logits)


__all__ = ["Ernie", "RobustConfig", "attach", "perturbation", "regularizer"]
