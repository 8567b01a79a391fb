"""Adam and gradient-norm clipping over one flat buffer holding all of a network's parameters.

PPO's and MAPPO's 64x64 actor-critics have 14 parameter tensors of a few thousand numbers. At
that size each op costs microseconds of dispatch for nanoseconds of arithmetic, and torch's Adam
and `clip_grad_norm_` run several ops per tensor plus their Python bookkeeping (per-parameter
step counters, device grouping, a norm per tensor). Viewing every parameter, and its gradient,
into one flat tensor makes the clip one norm and one multiply and the Adam step one fused
kernel over one tensor. The arithmetic is unchanged: elementwise Adam is the same per element,
the step count is the same for all (every parameter steps together), and the clip is torch's
rule (scale by max_norm / (total norm + 1e-6), at most 1).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class FlatAdam:
    """torch's fused Adam over `module`'s parameters held in one flat tensor, with global
    grad-norm clipping: `step(loss)` zeroes the gradients, backpropagates, clips and steps.

    The module keeps its own parameters (its state_dict is unchanged); their `.data` and `.grad`
    become views of `self.flat` and `self.flat.grad`, so backward accumulates into the flat
    gradient in place and Adam's in-place step moves the module's weights. `state_dict` is the
    Adam state of the one flat tensor; `load_state_dict` also takes a per-parameter Adam state
    (checkpoints written before this class), concatenated in parameter order.
    """

    def __init__(self, module: nn.Module, lr: float, eps: float = 1e-8,
                 max_grad_norm: float | None = None):
        self.params = list(module.parameters())
        first = self.params[0]
        size = sum(p.numel() for p in self.params)
        self.flat = nn.Parameter(torch.empty(size, dtype=first.dtype, device=first.device))
        self.flat.grad = torch.zeros_like(self.flat)
        self.slices: list[tuple[int, int]] = []
        offset = 0
        for p in self.params:
            self.slices.append((offset, offset + p.numel()))
            offset += p.numel()
        self._link()
        self.max_grad_norm = max_grad_norm
        self.opt = torch.optim.Adam([self.flat], lr=lr, eps=eps, fused=True)

    def _link(self) -> None:
        """Make every parameter's data (values kept) and grad views of the flat buffers."""
        self.grads = []
        with torch.no_grad():
            for p, (a, b) in zip(self.params, self.slices):
                view = self.flat.data[a:b].view_as(p)
                view.copy_(p.data)
                p.data = view
                self.grads.append(self.flat.grad[a:b].view_as(p))
                p.grad = self.grads[-1]
        self.ptrs = [p.data_ptr() for p in self.params]

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The Adam's param groups (a learning-rate schedule sets `lr` here)."""
        return self.opt.param_groups

    def step(self, loss: torch.Tensor) -> None:
        # A parameter re-pointed from outside (unpickled, reassigned, grad set to None) would
        # silently stop training: re-link before the backward instead.
        if any(p.grad is not g or p.data_ptr() != q
               for p, g, q in zip(self.params, self.grads, self.ptrs)):
            self._link()
        grad = self.flat.grad
        grad.zero_()
        loss.backward()
        if self.max_grad_norm is not None:  # clip_grad_norm_'s rule
            norm = grad.norm()
            if grad.is_cpu:  # the norm read as a float (one op), a scale of 1 skipped
                scale = self.max_grad_norm / (norm.item() + 1e-6)
                if scale < 1.0:
                    grad.mul_(scale)
            else:  # on a GPU without reading the norm back (a host sync per step)
                grad.mul_((self.max_grad_norm / (norm + 1e-6)).clamp(max=1.0))
        self._adam()

    def _adam(self) -> None:
        """torch Adam's step for the one tensor: its fused kernel called directly, which is
        what `Adam(fused=True).step()` runs after ~50 µs of per-call Python bookkeeping."""
        group = self.opt.param_groups[0]
        state = self.opt.state[self.flat]
        # first step: let torch create the state (moments, step count); a torch without the
        # private kernel takes the public path, same arithmetic
        if not state or not hasattr(torch, "_fused_adam_"):
            self.opt.step()
            return
        beta1, beta2 = group["betas"]
        state["step"].add_(1)
        torch._fused_adam_([self.flat.data], [self.flat.grad], [state["exp_avg"]],
                           [state["exp_avg_sq"]], [], [state["step"]], lr=group["lr"],
                           beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
                           eps=group["eps"], amsgrad=False, maximize=False)

    def state_dict(self) -> dict[str, Any]:
        return self.opt.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ids = state["param_groups"][0]["params"]
        if len(ids) == len(self.params) and len(ids) > 1:  # per-parameter Adam state
            state = self._flatten(state, ids)
        self.opt.load_state_dict(state)

    def _flatten(self, state: dict[str, Any], ids: list[int]) -> dict[str, Any]:
        """One flat Adam state from torch Adam's per-parameter one; a parameter without state
        (it never had a gradient) gets zero moments, which leave it where it is."""
        per = state["state"]
        steps = [per[i]["step"] for i in ids if i in per]
        moments = {}
        for key in ("exp_avg", "exp_avg_sq"):
            moments[key] = torch.cat([
                per[i][key].reshape(-1) if i in per else torch.zeros(p.numel(), dtype=p.dtype)
                for i, p in zip(ids, self.params)])
        # a fresh step tensor: torch's load keeps the one it is given, which may be still
        # stepped by the optimizer that wrote the state
        flat_state = {0: {"step": torch.tensor(max(float(t) for t in steps)), **moments}} \
            if steps else {}
        return {"state": flat_state,
                "param_groups": [{**state["param_groups"][0], "params": [0]}]}
