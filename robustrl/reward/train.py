"""Training loops for reward models from preferences or ratings, for any item kind.

``items`` is whatever the model's forward takes, indexable by a tensor of item ids: a feature
tensor (N, D), segments (N, L, D), frozen text features, or :class:`~robustrl.reward.text.
TextItems` for fine-tuning. Pairs index into it, so each item is stored (and embedded) once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from robustrl.core.errors import RobustRLError
from robustrl.core.progress import progress
from robustrl.reward.data import PreferenceData
from robustrl.reward.losses import (
    DPOLoss,
    LossOutput,
    MeanVarLoss,
    PairwiseLoss,
    RegressionLoss,
    expo_extrapolate,
    preference_target,
)
from robustrl.reward.models import RewardOutput

__all__ = [
    "Pairs",
    "TrainConfig",
    "TrainResult",
    "apply_expo",
    "check_loss",
    "fit_preferences",
    "fit_ratings",
    "item_rewards",
]


@dataclass
class TrainConfig:
    """Optimisation settings shared by every reward model."""

    epochs: int = 30
    """Passes over the training pairs."""
    batch_size: int = 64
    """Pairs per gradient step (R3M's δ and adaptive τ are solved per batch)."""
    lr: float = 1e-3
    """AdamW learning rate (use ~2e-5 when fine-tuning a backbone)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    seed: int = 0
    """Seeds initial shuffling and the optimiser's order of pairs."""
    device: str = "cpu"
    """Torch device for the model and items."""


@dataclass
class Pairs:
    """Preference pairs as tensors: item ids plus what the losses read."""

    chosen: Tensor
    """(n,) long item ids of the preferred items (or of item a, with labels)."""
    rejected: Tensor
    """(n,) long item ids of the other items."""
    label: Tensor | None = None
    """(n,) P(chosen ≻ rejected) target: 1, 0.5 (tie) or 0; None = all 1."""
    strength: Tensor | None = None
    """(n,) preference strength m; None = 1."""
    target: Tensor | None = None
    """(n, 3 or 5) annotator label distribution for Mean-Var; None = from label/strength."""

    def __len__(self) -> int:
        return len(self.chosen)

    def __getitem__(self, idx: Tensor) -> Pairs:
        return Pairs(*(None if v is None else v[idx] for v in self._fields()))

    def _fields(self) -> tuple[Tensor | None, ...]:
        return (self.chosen, self.rejected, self.label, self.strength, self.target)

    def to(self, device: str | torch.device) -> Pairs:
        return Pairs(*(None if v is None else v.to(device) for v in self._fields()))

    def meanvar_target(self) -> Tensor:
        """Label distributions for Mean-Var: given, else one-hot from label and strength."""
        if self.target is not None:
            return self.target
        label = self.label if self.label is not None else torch.ones(len(self))
        return preference_target(label, self.strength, 3 if self.strength is None else 5)

    @classmethod
    def from_data(cls, data: PreferenceData) -> Pairs:
        """From a loaded dataset; PandaLM-style votes become the Mean-Var target."""
        votes = None if data.votes is None else torch.from_numpy(data.votes)
        return cls(
            torch.from_numpy(data.chosen).long(),
            torch.from_numpy(data.rejected).long(),
            torch.from_numpy(data.label),
            None if data.strength is None else torch.from_numpy(data.strength),
            None if votes is None else votes / votes.sum(1, keepdim=True),
        )


@dataclass
class TrainResult:
    """What a training run produced besides the weights."""

    losses: list[float]
    """Mean training loss per epoch."""
    seconds: float
    """Wall time of the optimisation loop alone."""
    cpu_seconds: float = 0.0
    """Process CPU time of the same loop: steadier than wall time on a shared machine, for
    comparing the cost of losses (R3M vs BT)."""
    outliers: np.ndarray | None = None
    """R3M: (n,) bool, training pairs the final model treats as corrupted (δ_i > 0)."""
    tau: np.ndarray | None = None
    """Adaptive scaling: (n,) per-pair τ under the final model."""


def _pair_loss(loss: PairwiseLoss | MeanVarLoss, out: RewardOutput, n: int, p: Pairs) -> LossOutput:
    delta = out.reward[:n] - out.reward[n:]
    if isinstance(loss, MeanVarLoss):
        assert out.var is not None
        return loss(delta, out.var[:n] + out.var[n:], p.meanvar_target())
    return loss(delta, p.strength, p.label)


def check_loss(loss: Any) -> None:
    """Stop early, with what to do instead, for losses that do not train on pairs of items."""
    if isinstance(loss, DPOLoss):
        raise RobustRLError(
            "DPO-family losses train a policy from log-probs; call the loss on your LLM's "
            "log-prob tensors (robustrl.reward.losses.DPOLoss), not on a reward model"
        )
    if isinstance(loss, RegressionLoss):
        raise RobustRLError("the regression loss trains on ratings: use fit_ratings")


def _check(model: nn.Module, loss: Any) -> None:
    check_loss(loss)
    head = _net_cfg(model).head
    if isinstance(loss, MeanVarLoss) != (head == "meanvar"):
        raise RobustRLError(
            f"loss {type(loss).__name__} does not fit a {head!r} head; "
            "Mean-Var needs head='meanvar' and the other losses a reward head"
        )


def _net_cfg(model: nn.Module) -> Any:
    net = getattr(model, "net", model)
    return net.cfg


def _loop(
    model: nn.Module, n: int, cfg: TrainConfig, step: Any, desc: str
) -> tuple[list[float], float, float]:
    """Shared optimisation loop: shuffled minibatches, AdamW, a quiet-off-TTY progress bar."""
    gen = torch.Generator().manual_seed(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    model.train()
    losses: list[float] = []
    t0, c0 = time.perf_counter(), time.process_time()
    with progress(cfg.epochs, desc=desc, unit="epoch") as bar:
        for _ in range(cfg.epochs):
            total = torch.zeros(())
            for idx in torch.randperm(n, generator=gen).split(cfg.batch_size):
                out = step(idx.to(cfg.device))
                opt.zero_grad(set_to_none=True)
                out.loss.backward()
                opt.step()
                total += out.loss.detach().cpu() * len(idx)
            losses.append(float(total) / n)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            bar.update()
    model.eval()
    return losses, time.perf_counter() - t0, time.process_time() - c0


def _seeded_on_device(model: nn.Module, items: Any, cfg: TrainConfig) -> Any:
    """Seed torch, move ``model`` to ``cfg.device``; ``items`` there too when a tensor (a text
    model tokenizes its items itself)."""
    torch.manual_seed(cfg.seed)
    model.to(cfg.device)
    return items.to(cfg.device) if isinstance(items, Tensor) else items


def fit_preferences(
    model: nn.Module,
    items: Any,
    pairs: Pairs,
    loss: PairwiseLoss | MeanVarLoss,
    cfg: TrainConfig | None = None,
) -> TrainResult:
    """Train ``model`` on preference pairs with any pairwise loss or Mean-Var."""
    cfg = cfg or TrainConfig()
    _check(model, loss)
    if len(pairs) == 0:
        raise RobustRLError("no preference pairs to train on")
    items = _seeded_on_device(model, items, cfg)
    pairs = pairs.to(cfg.device)
    n = len(pairs)

    def step(idx: Tensor) -> LossOutput:
        p = pairs[idx]
        out = model(items[torch.cat([p.chosen, p.rejected])])
        return _pair_loss(loss, out, len(idx), p)

    result = TrainResult(*_loop(model, n, cfg, step, f"train {type(loss).__name__}"))
    if isinstance(loss, PairwiseLoss):
        r = item_rewards(model, items, cfg.batch_size * 8)
        final = loss(r[pairs.chosen] - r[pairs.rejected], pairs.strength, pairs.label)
        if final.outliers is not None:
            result.outliers = final.outliers.cpu().numpy()
        if final.tau is not None:
            result.tau = final.tau.cpu().numpy()
    return result


def fit_ratings(
    model: nn.Module, items: Any, targets: Tensor, cfg: TrainConfig | None = None
) -> TrainResult:
    """Train an attribute head on (N, K) ratings by masked MSE (NaN = missing)."""
    cfg = cfg or TrainConfig()
    if _net_cfg(model).head != "attributes":
        raise RobustRLError("regression needs a model with head='attributes'")
    if len(targets) == 0:
        raise RobustRLError("no ratings to train on")
    items = _seeded_on_device(model, items, cfg)
    targets = targets.to(cfg.device)
    loss = RegressionLoss()

    def step(idx: Tensor) -> LossOutput:
        return loss(model(items[idx]).attributes, targets[idx])

    return TrainResult(*_loop(model, len(targets), cfg, step, "train regression"))


@torch.no_grad()
def item_rewards(model: nn.Module, items: Any, batch_size: int = 512) -> Tensor:
    """(N,) rewards of all items, in eval mode and in batches."""
    model.eval()
    ids = torch.arange(len(items))
    return torch.cat([model(items[b]).reward for b in ids.split(batch_size)])


def apply_expo(init: Mapping[str, Tensor], trained: nn.Module, alpha: float) -> None:
    """ExPO in place: trained ← init + α(trained − init), ``init`` a copy of the state dict
    taken before training (HelpSteer2-Preference recipe)."""
    trained.load_state_dict(expo_extrapolate(init, trained.state_dict(), alpha))
