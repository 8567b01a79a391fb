"""The surrogate of a transfer attack (obs-transfer): which policy the perturbation is
computed on, loaded from `surrogate=RUN_DIR` unless the caller already holds it (the bench
resolves a suite's train label to that run and passes the agent)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from robustrl.core.errors import RobustRLError
from robustrl.perturb import PerturbationSpec


def surrogate_policy(specs: Sequence[PerturbationSpec], surrogate: Any = None) -> Any:
    """The `surrogate_fn` for `robustrl.perturb.apply`: `surrogate.attack_policy` when an agent
    is given, else the policy of the run directory named by the obs-transfer spec; None when
    no spec is a transfer attack."""
    named = {s.get("surrogate") for s in specs if s.kind == "obs-transfer"}
    if not named:
        return None
    if surrogate is not None:
        return surrogate.attack_policy
    if None in named or len(named) > 1:
        raise RobustRLError("obs-transfer needs one surrogate=RUN_DIR (a trained run of the same "
                            "env), e.g. obs-transfer:0.1,surrogate=runs/ppo-baseline")
    (path,) = named
    checkpoint = Path(path) / "agent.pt"
    if not checkpoint.is_file():
        raise RobustRLError(f"obs-transfer: surrogate '{path}' is not a trained run directory "
                            "(no agent.pt); give the directory of a finished run")
    from robustrl.agents import load

    agent = load(checkpoint)
    agent.close()  # it only computes gradients; its envs (a libsumo slot) are not needed
    return agent.attack_policy
