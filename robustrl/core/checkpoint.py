"""An agent's checkpointed state as a list of attribute names, saved and restored one way.

Every learner saves the same kinds of things (networks, optimizers, normalizers, a replay
buffer, a learnable temperature tensor, a few counters); listing their names once keeps
`state_dict` and `load_state_dict` from drifting apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


def _owner_and_attr(owner: Any, name: str) -> tuple[Any, str]:
    *path, attr = name.split(".")
    for part in path:
        owner = getattr(owner, part)
    return owner, attr


def state_of(owner: Any, names: Iterable[str]) -> dict[str, Any]:
    """{key: state} for the attributes `names` of `owner`.

    An object with `state_dict` gives its state dict, a tensor a detached copy, anything else
    (counters) its value. A dotted name reaches into an attribute ("stats.episodes") and is
    stored under its last part ("episodes").
    """
    state = {}
    for name in names:
        obj, attr = _owner_and_attr(owner, name)
        value = getattr(obj, attr)
        if hasattr(value, "state_dict"):
            value = value.state_dict()
        elif isinstance(value, torch.Tensor):
            value = value.detach().clone()
        state[attr] = value
    return state


def load_state(owner: Any, state: dict[str, Any], names: Iterable[str],
               optional: Iterable[str] = ()) -> None:
    """Restore what `state_of(owner, names)` saved; `optional` names are restored when the
    state has them (a replay buffer is saved only for resuming)."""
    for name in [*names, *(n for n in optional if n.rsplit(".", 1)[-1] in state)]:
        obj, attr = _owner_and_attr(owner, name)
        value = getattr(obj, attr)
        if hasattr(value, "load_state_dict"):
            value.load_state_dict(state[attr])
        elif isinstance(value, torch.Tensor):
            with torch.no_grad():
                value.copy_(state[attr])
        else:
            setattr(obj, attr, state[attr])
