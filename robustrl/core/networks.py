"""Network building blocks shared by every agent."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int,
        activation: type[nn.Module] = nn.ReLU, out_gain: float | None = None) -> nn.Sequential:
    """Plain MLP. `out_gain` sets an orthogonal init on the last layer (PPO heads use 0.01)."""
    layers: list[nn.Module] = []
    dims = [in_dim, *hidden]
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), activation()]
    last = nn.Linear(dims[-1], out_dim)
    if out_gain is not None:
        nn.init.orthogonal_(last.weight, out_gain)
        nn.init.zeros_(last.bias)
    layers.append(last)
    return nn.Sequential(*layers)


class NumpyMLP:
    """A numpy snapshot of an `mlp`, for acting on one or a few observations per env step.

    At that size torch's per-operation overhead (several µs each) outweighs the arithmetic, so
    rollouts run the snapshot instead; take a new one after every update.
    """

    ACTIVATIONS = {nn.Tanh: np.tanh, nn.ReLU: lambda x: np.maximum(x, 0.0)}

    def __init__(self, net: nn.Sequential):
        self.layers: list[tuple[np.ndarray, np.ndarray] | Any] = []
        for m in net:
            if isinstance(m, nn.Linear):
                self.layers.append((m.weight.detach().cpu().numpy().T.copy(),
                                    m.bias.detach().cpu().numpy().copy()))
            elif type(m) in self.ACTIVATIONS:
                self.layers.append(self.ACTIVATIONS[type(m)])
            else:
                raise TypeError(f"NumpyMLP supports Linear, Tanh and ReLU layers, not {m}")

    @classmethod
    def joint(cls, first: nn.Sequential, second: nn.Sequential) -> NumpyMLP:
        """One snapshot of two `mlp`s of the same depth and activations on the same input,
        outputs side by side ([first | second]): the first layers' weights side by side, the
        others block-diagonal, so acting costs one network's numpy calls instead of two."""
        a, b = cls(first), cls(second)
        if len(a.layers) != len(b.layers) or any(
                isinstance(la, tuple) != isinstance(lb, tuple)
                or (not isinstance(la, tuple) and la is not lb)
                for la, lb in zip(a.layers, b.layers)):
            raise TypeError("NumpyMLP.joint needs two mlps of the same depth and activations")
        out = cls.__new__(cls)
        out.layers = []
        for i, (la, lb) in enumerate(zip(a.layers, b.layers)):
            if not isinstance(la, tuple):
                out.layers.append(la)
                continue
            (wa, ba), (wb, bb) = la, lb
            if i == 0:
                w = np.concatenate([wa, wb], 1)
            else:
                w = np.zeros((wa.shape[0] + wb.shape[0], wa.shape[1] + wb.shape[1]), wa.dtype)
                w[:wa.shape[0], :wa.shape[1]], w[wa.shape[0]:, wa.shape[1]:] = wa, wb
            out.layers.append((w, np.concatenate([ba, bb])))
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = x @ layer[0] + layer[1] if isinstance(layer, tuple) else layer(x)
        return x


def orthogonal_init(module: nn.Module, gain: float = math.sqrt(2)) -> None:
    """Orthogonal init of every Linear (the PPO convention) before heads get their own gains."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.orthogonal_(m.weight, gain)
            nn.init.zeros_(m.bias)


class EnsembleLinear(nn.Module):
    """`n` independent Linear layers applied in one batched matmul: (n, B, in) -> (n, B, out)."""

    def __init__(self, n: int, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim))
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default init, per member
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.shape[-1] == 1:  # a value head: MKL's batched matmul is ~5x slower on
            return (x * self.weight.transpose(1, 2)).sum(-1, keepdim=True) + self.bias  # width 1
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleMLP(nn.Module):
    """`n` MLPs evaluated together (twin critics cost one batched pass instead of two).

    Input (B, in) is shared by all members; output is (n, B, out).
    """

    def __init__(self, n: int, in_dim: int, hidden: Sequence[int], out_dim: int):
        super().__init__()
        self.n = n
        dims = [in_dim, *hidden, out_dim]
        self.layers = nn.ModuleList(EnsembleLinear(n, a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.unsqueeze(0).expand(self.n, *x.shape) if x.dim() == 2 else x
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        return h


@torch.no_grad()
def polyak_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """target <- (1 - tau) target + tau source, in one fused call over all parameters."""
    torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)
