"""Preference losses, each written once on reward differences.

Every pairwise loss takes Δ = r(chosen) − r(rejected) as a tensor, so the same code trains
RL segment reward models, text reward models, HERON's factor model and (through
:class:`DPOLoss`, where Δ = β·log-ratio difference) a policy directly. Formulas and defaults
follow ``specs/reward_learning.md``.

Labels, where given, are P(chosen ≻ rejected) targets: 1 (chosen better), 0 (rejected better;
the pair is flipped), 0.5 (tie). Preference strength m ∈ [1, 3] scales or shifts the loss
where a loss uses it and defaults to 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from robustrl.core.errors import RobustRLError

TieMode = Literal["soft", "skip"]

#: Mean-Var label-bin edges on Δ: strong/slight rejected, tie, slight/strong chosen.
MEANVAR_EDGES = (-1.5, -0.5, 0.5, 1.5)

__all__ = [
    "MEANVAR_EDGES",
    "AdaptiveLoss",
    "BTLoss",
    "DPOLoss",
    "LossOutput",
    "MarginBTLoss",
    "MeanVarLoss",
    "PairwiseLoss",
    "R3MLoss",
    "RegressionLoss",
    "ScaledBTLoss",
    "adaptive_tau",
    "diverging_score",
    "dpo_delta",
    "expo_extrapolate",
    "loss_names",
    "make_loss",
    "meanvar_class_probs",
    "preference_target",
    "r3m_delta",
    "soft_target_loss",
]


@dataclass
class LossOutput:
    """A loss value plus the per-pair quantities robust losses are used for."""

    loss: Tensor
    """Scalar to back-propagate (mean over the pairs that count)."""
    per_pair: Tensor
    """(n,) per-pair loss, detached; skipped ties are 0."""
    outliers: Tensor | None = None
    """(n,) bool, R3M only: pairs with δ_i > 0, i.e. labels the model treats as corrupted."""
    tau: Tensor | None = None
    """(n,) adaptive preference scaling only: the per-pair temperature τ_i used."""


# ----------------------------------------------------------------------------------------
# Functional pieces (per pair, no reduction)


def soft_target_loss(delta: Tensor, target: Tensor | float) -> Tensor:
    """Cross-entropy of σ(Δ) against a soft target y: −y log σ(Δ) − (1−y) log σ(−Δ).

    y = 1 is BT; y = 0.5 is the tie loss, which pulls Δ to 0 instead of dropping the pair.
    """
    return target * F.softplus(-delta) + (1 - target) * F.softplus(delta)


def r3m_delta(delta: Tensor, lam: float) -> Tensor:
    """R3M's closed-form outlier variables δ_i = max(log(1/λ − 1) − Δ_i, 0), detached.

    Minimises −log σ(Δ_i + δ_i) + λ δ_i over δ_i ≥ 0 for fixed Δ (the per-pair form of R3M's
    objective −(1/n) Σ log σ(Δ_i + δ_i) + λ‖δ‖₁/n): the minimiser sets σ(Δ_i + δ_i) = 1 − λ.
    """
    return (math.log(1.0 / lam - 1.0) - delta.detach()).clamp_min(0.0)


def adaptive_tau(delta: Tensor, tau0: float = 0.1, tau_max: float | None = 4.0,
                 rho0: float = 0.1, steps: int = 3, quadratic: bool = False) -> Tensor:
    """Per-pair temperatures τ_i of adaptive preference scaling, by Newton steps from τ = 1.

    Minimises f(τ) = −τ log σ(Δ/τ) + (ρ₀ − log 2) τ (or, quadratic, + ρ₀τ² − τ log 2) with
    Δ detached. f is convex in τ (a perspective of −log σ), but its curvature vanishes as τ
    grows, so a plain clipped Newton step can bounce between τ₀ and τ_max; each step keeps a
    bracket [lo, hi] on the root of f′ and bisects whenever Newton would leave it. An optimum
    on a bound is detected directly. Confident pairs get large τ (a flatter loss).
    """
    d = delta.detach()
    # quadratic: f′ ≥ −log 2 + 2ρ₀τ, so the minimiser lies below log 2 / (2ρ₀)
    top = max(1.0, math.log(2.0) / (2 * rho0)) if quadratic else float(tau_max or 1.0)

    def grad(tau: Tensor) -> tuple[Tensor, Tensor]:
        x = d / tau
        s = torch.sigmoid(x)
        g = -(math.log(2.0) + F.logsigmoid(x)) + (1 - s) * x
        h = d.square() / tau.pow(3) * s * (1 - s)
        return (g + 2 * rho0 * tau, h + 2 * rho0) if quadratic else (g + rho0, h)

    lo, hi = torch.full_like(d, tau0), torch.full_like(d, top)
    at_lo, at_hi = grad(lo)[0] >= 0, grad(hi)[0] <= 0
    tau = torch.ones_like(d)
    for _ in range(steps):
        g, h = grad(tau)
        lo, hi = torch.where(g < 0, tau, lo), torch.where(g > 0, tau, hi)
        new = tau - g / h.clamp_min(1e-12)
        tau = torch.where((new > lo) & (new < hi), new, (lo + hi) / 2)
    return torch.where(at_lo, tau0, torch.where(at_hi, top, tau))


def _adaptive_objective(delta: Tensor, tau: Tensor, rho0: float, quadratic: bool) -> Tensor:
    """f(τ) per pair (Δ not detached: the model's gradient flows through Δ only)."""
    base = tau * F.softplus(-delta / tau) - tau * math.log(2.0)
    return base + (rho0 * tau.square() if quadratic else rho0 * tau)


def meanvar_class_probs(mean: Tensor, var: Tensor, n_classes: int = 5) -> Tensor:
    """Label-class probabilities of Δ ~ N(mean, var) through Φ at the bin edges.

    Columns run from "rejected much better" to "chosen much better"; with ``n_classes=3`` the
    strong and slight bins merge (rejected better, tie, chosen better), for data such as
    PandaLM whose annotators give no strength.
    """
    edges = mean.new_tensor(MEANVAR_EDGES)
    cdf = torch.special.ndtr((edges - mean[:, None]) / var.clamp_min(1e-12).sqrt()[:, None])
    cdf = F.pad(cdf, (1, 0), value=0.0)
    cdf = F.pad(cdf, (0, 1), value=1.0)
    probs = cdf.diff(dim=1)
    if n_classes == 3:
        probs = torch.stack([probs[:, :2].sum(1), probs[:, 2], probs[:, 3:].sum(1)], dim=1)
    elif n_classes != 5:
        raise RobustRLError(f"Mean-Var label distributions have 3 or 5 classes, got {n_classes}")
    return probs


def preference_target(label: Tensor, strength: Tensor | None = None, n_classes: int = 3) -> Tensor:
    """One-annotator label distribution for Mean-Var from a label (1, 0.5, 0) and strength.

    With 5 classes, strength 1 goes to the "slightly better" bin and strength ≥ 2 to "much
    better" (HelpSteer2's ±1 vs ±2/±3).
    """
    n = label.shape[0]
    out = label.new_zeros(n, n_classes)
    side = torch.where(label > 0.5, 1, torch.where(label < 0.5, -1, 0)).long()  # chosen/tie/rej
    if n_classes == 3:
        idx = side + 1
    else:
        m = strength if strength is not None else torch.ones_like(label)
        idx = 2 + side * (1 + (m >= 2).long())  # 0 strong rej, 1 slight rej, 2 tie, 3, 4
    out[torch.arange(n), idx] = 1.0
    return out


def diverging_score(
    mean_a: Tensor, var_a: Tensor, mean_b: Tensor, var_b: Tensor, lam: float = 1.0
) -> Tensor:
    """|μ_A − μ_B| − λ(σ_A + σ_B): low where the model expects annotators to disagree."""
    return (mean_a - mean_b).abs() - lam * (var_a.sqrt() + var_b.sqrt())


def dpo_delta(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor,
              ref_rejected: Tensor, beta: float) -> Tensor:
    """DPO's implicit reward difference β·[(log π − log π_ref)(chosen) − (…)(rejected)]."""
    return beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))


def expo_extrapolate(
    theta_reg: Mapping[str, Tensor], theta_sbt: Mapping[str, Tensor], alpha: float = 1.5
) -> dict[str, Tensor]:
    """ExPO: θ = θ_reg + α(θ_sbt − θ_reg) on floating-point entries of two state dicts.

    α = 1 returns θ_sbt; α > 1 moves past it, away from the regression initialisation
    (HelpSteer2-Preference reports α ≈ 1.5; the exact convention is unverified, so α is the
    user's). Non-float entries (counters, index buffers) are taken from θ_sbt.
    """
    if theta_reg.keys() != theta_sbt.keys():
        missing = sorted(set(theta_reg) ^ set(theta_sbt))[:3]
        raise RobustRLError(f"ExPO needs two models of the same shape; keys differ: {missing}")
    out = {}
    for k, sbt in theta_sbt.items():
        reg = theta_reg[k]
        if reg.shape != sbt.shape:
            raise RobustRLError(f"ExPO: '{k}' has shape {tuple(reg.shape)} vs {tuple(sbt.shape)}")
        out[k] = reg + alpha * (sbt - reg) if sbt.is_floating_point() else sbt.clone()
    return out


# ----------------------------------------------------------------------------------------
# Loss objects: a dataclass per loss is its config; calling it computes the loss.


@dataclass
class PairwiseLoss:
    """Base of the losses on Δ: label orientation and tie handling live here, once."""

    ties: TieMode = "soft"
    """Tie pairs (label 0.5): "soft" = cross-entropy with target 0.5, "skip" = drop them."""

    kind: ClassVar[str] = "pairwise"

    def __post_init__(self) -> None:
        if self.ties not in ("soft", "skip"):
            raise RobustRLError(f"ties must be 'soft' or 'skip', got {self.ties!r}")

    def strict(self, delta: Tensor, strength: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-pair loss for pairs whose chosen item is better (Δ already oriented)."""
        raise NotImplementedError

    def __call__(
        self, delta: Tensor, strength: Tensor | None = None, label: Tensor | None = None
    ) -> LossOutput:
        m = torch.ones_like(delta) if strength is None else strength.to(delta)
        if label is None:
            per, extra = self.strict(delta, m)
            return LossOutput(per.mean(), per.detach(), **extra)
        label = label.to(delta)
        flip, tie = label < 0.5, label == 0.5
        # the common all-strict, all-"chosen" batch skips the orientation and tie work
        per, extra = self.strict(torch.where(flip, -delta, delta) if flip.any() else delta, m)
        if not tie.any():
            return LossOutput(per.mean(), per.detach(), **extra)
        if "outliers" in extra:  # a tie is never an R3M outlier: it has no label to corrupt
            extra["outliers"] = extra["outliers"] & ~tie
        if self.ties == "skip":
            weight = (~tie).to(delta)
            per = per * weight
            return LossOutput(per.sum() / weight.sum().clamp_min(1), per.detach(), **extra)
        per = torch.where(tie, soft_target_loss(delta, 0.5), per)
        return LossOutput(per.mean(), per.detach(), **extra)


@dataclass
class BTLoss(PairwiseLoss):
    """Bradley–Terry: −log σ(Δ)."""

    def strict(self, delta: Tensor, strength: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return F.softplus(-delta), {}


@dataclass
class MarginBTLoss(PairwiseLoss):
    """Margin BT: −log σ(Δ − m), asks for a gap that grows with the preference strength."""

    def strict(self, delta: Tensor, strength: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return F.softplus(strength - delta), {}


@dataclass
class ScaledBTLoss(PairwiseLoss):
    """Scaled BT: −m·log σ(Δ), the best from-scratch BT variant in HelpSteer2-Preference."""

    def strict(self, delta: Tensor, strength: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return strength * F.softplus(-delta), {}


@dataclass
class R3MLoss(PairwiseLoss):
    """R3M: −log σ(Δ_i + δ_i) + λδ_i with δ_i in closed form (one alternating step per batch).

    The gradient weight of pair i on Δ_i is min(1 − σ(Δ_i), λ): a pair the model strongly
    disagrees with pulls no harder than λ, which is what makes corrupted labels harmless.
    Preference strength is not used.
    """

    lam: float = 0.5
    """Outlier penalty λ ∈ (0, 1); pair i is an outlier (δ_i > 0) when Δ_i < log(1/λ − 1)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.lam < 1.0:
            raise RobustRLError(f"r3m: lam must be in (0, 1), got {self.lam}")

    def strict(self, delta: Tensor, strength: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        # −δ = min(Δ − c, 0) is r3m_delta negated, held fixed (the alternating step); written
        # so that an R3M step adds only a few elementwise ops to a BT step.
        neg_d = (delta.detach() - math.log(1.0 / self.lam - 1.0)).clamp_max_(0.0)
        per = F.softplus(neg_d - delta).sub(neg_d, alpha=self.lam)
        return per, {"outliers": neg_d < 0}


@dataclass
class AdaptiveLoss(PairwiseLoss):
    """Adaptive preference scaling: −τ_i log σ(Δ_i/τ_i) + ρτ_i, τ_i by Newton steps on Δ.

    Preference strength is not used (τ plays its role, learned per pair).
    """

    tau0: float = 0.1
    """Lower bound τ₀ of the per-pair temperature."""
    tau_max: float = 4.0
    """Upper bound of τ (1 or 3 for robotics, 4–5 for LLMs); unused by the quadratic variant."""
    rho0: float = 0.1
    """Regulariser ρ₀ (0.05–0.5): larger keeps τ small, i.e. closer to plain BT."""
    newton_steps: int = 3
    """Newton steps per batch, from τ = 1 (3–5 suffice)."""
    quadratic: bool = False
    """Use the quadratic regulariser ρ₀τ² − τ log 2 instead of the box [τ₀, τ_max]."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.tau0 <= 1 <= self.tau_max:
            raise RobustRLError(
                f"adaptive: need 0 < tau0 <= 1 <= tau_max, got tau0={self.tau0}, "
                f"tau_max={self.tau_max}"
            )
        if self.rho0 <= 0 or self.newton_steps < 1:
            raise RobustRLError("adaptive: rho0 must be > 0 and newton_steps >= 1")

    def strict(self, delta: Tensor, strength: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        tau = adaptive_tau(
            delta, self.tau0, self.tau_max, self.rho0, self.newton_steps, self.quadratic
        )
        return _adaptive_objective(delta, tau, self.rho0, self.quadratic), {"tau": tau}


@dataclass
class MeanVarLoss:
    """Mean-Var distributional preference loss: KL(annotator labels ‖ model label classes).

    The model gives each item r ~ N(μ, σ²), so Δ ~ N(μ_c − μ_r, σ_c² + σ_r²); bins at ±0.5,
    ±1.5 turn that into 5 (or 3 merged) class probabilities. Unlike BT, a pair on which
    annotators split can be fit by a large variance instead of a confident Δ.
    """

    kind: ClassVar[str] = "meanvar"

    def __call__(self, mean: Tensor, var: Tensor, target: Tensor) -> LossOutput:
        q = meanvar_class_probs(mean, var, target.shape[1]).clamp_min(1e-12)
        per = (torch.xlogy(target, target) - target * q.log()).sum(1)
        return LossOutput(per.mean(), per.detach())


@dataclass
class RegressionLoss:
    """Multi-attribute regression (SteerLM / HelpSteer2 ratings): MSE over the observed
    attributes; a missing one is masked out (``mask`` False) or given as NaN."""

    kind: ClassVar[str] = "regression"

    def __call__(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> LossOutput:
        observed = ~torch.isnan(target) if mask is None else mask & ~torch.isnan(target)
        sq = torch.where(observed, pred - torch.nan_to_num(target), 0.0).square()
        return LossOutput(sq.sum() / observed.sum().clamp_min(1), sq.sum(1).detach())


@dataclass
class DPOLoss:
    """A pairwise loss applied to DPO's Δ = β·(policy − reference log-ratio difference).

    DPO is ``DPOLoss(BTLoss())``, R3M-DPO ``DPOLoss(R3MLoss(lam))``, Ada-DPO
    ``DPOLoss(AdaptiveLoss())``; log-probs are summed over each response's tokens by the
    caller, who owns the LLM.
    """

    inner: PairwiseLoss = field(default_factory=BTLoss)
    """The loss on Δ."""
    beta: float = 0.1
    """DPO temperature β on the log-ratio difference."""

    kind: ClassVar[str] = "logprobs"

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise RobustRLError(f"dpo: beta must be > 0, got {self.beta}")

    def __call__(self, policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor,
                 ref_rejected: Tensor, strength: Tensor | None = None,
                 label: Tensor | None = None) -> LossOutput:
        delta = dpo_delta(policy_chosen, policy_rejected, ref_chosen, ref_rejected, self.beta)
        return self.inner(delta, strength, label)


# ----------------------------------------------------------------------------------------
# Registry

_LOSSES: dict[str, type] = {
    "bt": BTLoss,
    "margin-bt": MarginBTLoss,
    "scaled-bt": ScaledBTLoss,
    "r3m": R3MLoss,
    "adaptive": AdaptiveLoss,
    "meanvar": MeanVarLoss,
    "regression": RegressionLoss,
}
_DPO = {"dpo": BTLoss, "r3m-dpo": R3MLoss, "ada-dpo": AdaptiveLoss}


def loss_names() -> list[str]:
    """Names :func:`make_loss` accepts."""
    return [*_LOSSES, *_DPO]


def make_loss(name: str, **params: object) -> PairwiseLoss | MeanVarLoss | RegressionLoss | DPOLoss:
    """Build a loss by name, e.g. ``make_loss("r3m", lam=0.3)``; bad input → one-line error.

    DPO-family names take ``beta`` plus the parameters of their inner loss.
    """
    key = name.strip().lower().replace("_", "-")
    if key in _DPO:
        beta = params.pop("beta", 0.1)
        return DPOLoss(inner=_build(key, _DPO[key], params), beta=float(beta))  # type: ignore[arg-type]
    if key not in _LOSSES:
        raise RobustRLError(f"unknown loss {name!r}; choose one of: {', '.join(loss_names())}")
    return _build(key, _LOSSES[key], params)


def _build(name: str, cls: type, params: dict[str, object]) -> Any:
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        has = ", ".join(allowed) if allowed else "none"
        raise RobustRLError(f"loss {name!r} has no parameter {unknown[0]!r}; its parameters: {has}")
    try:
        return cls(**params)
    except (TypeError, ValueError) as e:
        raise RobustRLError(f"loss {name!r}: bad parameter ({e})") from None
