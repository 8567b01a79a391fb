"""The torch device a learner runs on, chosen by name (run.device)."""

from __future__ import annotations

import torch

from robustrl.core.errors import RobustRLError


def torch_device(name: str | torch.device) -> torch.device:
    """A torch device by name ("cpu", "cuda", "cuda:1"), refusing one this machine lacks."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise RobustRLError(f"unknown torch device {name!r}; use cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RobustRLError(f"device {str(name)!r} asked for, but this torch build sees no GPU; "
                            "use run.device=cpu")
    return device


__all__ = ["torch_device"]
