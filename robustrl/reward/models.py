"""Reward networks over feature vectors and segments, and their on-disk format.

One :class:`RewardNet` serves every item kind: RL observations/segments (features are the
observation–action vectors) and text (features are frozen backbone embeddings, or the output of
a fine-tuned backbone in :mod:`robustrl.reward.text`). Its head gives a scalar reward, K
attributes (reduced to a reward by fixed weights), or a mean and log-variance (Mean-Var).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

from robustrl.core.errors import RobustRLError
from robustrl.core.io import atomic_torch_save, atomic_write_text
from robustrl.core.networks import mlp

__all__ = [
    "HeadKind",
    "RewardNet",
    "RewardNetConfig",
    "RewardOutput",
    "load_config",
    "load_net",
    "save_net",
    "scalar_from_attributes",
]

HeadKind = Literal["scalar", "attributes", "meanvar"]


class RewardOutput(NamedTuple):
    """What a reward model says about a batch of items."""

    reward: Tensor
    """(B,) scalar reward: the mean for Mean-Var, the weighted attributes for K attributes."""
    var: Tensor | None = None
    """(B,) variance of the reward (Mean-Var head only)."""
    attributes: Tensor | None = None
    """(B, K) attribute predictions (attribute head only)."""


@dataclass
class RewardNetConfig:
    """Shape of a reward network; saved next to its weights so a model reloads alone."""

    in_dim: int = 0
    """Feature size per item (or per step of a segment); text models set it from the backbone."""
    hidden: tuple[int, ...] = ()
    """Hidden layer widths; () is a linear head, the usual choice on frozen embeddings."""
    head: HeadKind = "scalar"
    """Scalar reward, K attributes (regression), or mean + log-variance (Mean-Var)."""
    attributes: tuple[str, ...] = ()
    """Attribute names for the attribute head (e.g. HelpSteer2's five)."""
    attribute_weights: tuple[float, ...] = ()
    """Reward = Σ w_k·attribute_k; empty = the first attribute alone (helpfulness)."""

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        self.attributes = tuple(self.attributes)
        self.attribute_weights = tuple(float(w) for w in self.attribute_weights)
        if self.head not in ("scalar", "attributes", "meanvar"):
            raise RobustRLError(f"head must be scalar, attributes or meanvar, got {self.head!r}")
        if self.head == "attributes" and not self.attributes:
            raise RobustRLError("an attribute head needs attribute names")
        if self.attribute_weights and len(self.attribute_weights) != len(self.attributes):
            raise RobustRLError(
                f"{len(self.attribute_weights)} attribute weights for "
                f"{len(self.attributes)} attributes"
            )

    @property
    def out_dim(self) -> int:
        return {"scalar": 1, "meanvar": 2}.get(self.head, len(self.attributes))


class RewardNet(nn.Module):
    """MLP reward model. Input (B, D) items or (B, L, D) segments; a segment's reward is the
    sum of its per-step rewards (Christiano et al. 2017), and its variance the sum of theirs."""

    def __init__(self, cfg: RewardNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.mlp = mlp(cfg.in_dim, cfg.hidden, cfg.out_dim)
        w = torch.zeros(cfg.out_dim)
        if cfg.head == "attributes":
            if cfg.attribute_weights:
                w = torch.tensor(cfg.attribute_weights)
            else:
                w[0] = 1.0
        self.register_buffer("attribute_weights", w, persistent=False)

    @property
    def head(self) -> nn.Linear:
        """The last layer, which maps features to the head's outputs."""
        return self.mlp[-1]

    def forward(self, x: Tensor) -> RewardOutput:
        out = self.mlp(x)
        if x.dim() == 3:  # segments: per-step outputs summed over time
            if self.cfg.head == "meanvar":
                out = torch.stack([out[..., 0].sum(1), out[..., 1].exp().sum(1).log()], -1)
            else:
                out = out.sum(1)
        if self.cfg.head == "scalar":
            return RewardOutput(out[:, 0])
        if self.cfg.head == "meanvar":
            return RewardOutput(out[:, 0], var=out[:, 1].clamp(-20, 20).exp())
        return RewardOutput(out @ self.attribute_weights, attributes=out)


def scalar_from_attributes(net: RewardNet, weights: tuple[float, ...] = ()) -> RewardNet:
    """An exact scalar-head copy of an attribute (regression) model, body and head included.

    Reward = Σ w_k·attribute_k is linear in the head, so the scalar head is w·W, w·b — the
    HelpSteer2-Preference recipe's initialisation of Scaled BT from helpfulness regression.
    """
    cfg = net.cfg
    if cfg.head == "scalar":
        return net
    if cfg.head != "attributes":
        raise RobustRLError(f"cannot turn a {cfg.head!r} head into a scalar reward head")
    w = torch.tensor(weights) if weights else net.attribute_weights
    w = w.to(net.head.weight.dtype)
    if w.numel() != cfg.out_dim:
        raise RobustRLError(f"{w.numel()} weights for {cfg.out_dim} attributes")
    out = RewardNet(replace(cfg, head="scalar", attributes=(), attribute_weights=()))
    out.mlp[:-1].load_state_dict(net.mlp[:-1].state_dict())
    with torch.no_grad():
        out.head.weight.copy_(w @ net.head.weight)
        out.head.bias.copy_((w @ net.head.bias).reshape(1))
    return out


# ----------------------------------------------------------------------------------------
# On-disk format: DIR/config.json (everything needed to rebuild) + DIR/model.pt (weights)


def save_net(out_dir: str | Path, net: RewardNet, extra: dict[str, Any] | None = None) -> None:
    """Save weights and config.json (the net's config under ``net`` plus ``extra``), each
    written atomically so a crash never leaves a half-written model."""
    out = Path(out_dir)
    config = {**(extra or {}), "net": asdict(net.cfg)}
    atomic_torch_save(net.state_dict(), out / "model.pt")
    atomic_write_text(out / "config.json", json.dumps(config, indent=2, default=str))


def load_config(model_dir: str | Path) -> dict[str, Any]:
    """The config.json of a saved reward model, with a clear error if it is not one."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise RobustRLError(f"{model_dir} is not a saved reward model (no config.json)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise RobustRLError(f"{path}: corrupt config ({e.msg})") from None


def load_net(model_dir: str | Path, config: dict[str, Any] | None = None) -> RewardNet:
    """Rebuild the RewardNet saved in ``model_dir``."""
    config = config if config is not None else load_config(model_dir)
    net = RewardNet(RewardNetConfig(**config["net"]))
    state = torch.load(Path(model_dir) / "model.pt", map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    return net.eval()
