"""Optional experiment tracking next to TensorBoard: `run.track = "wandb"` logs the same scalars
to Weights & Biases (extra `robustrl[wandb]`; WANDB_MODE=offline works without an account).

A resumed run continues the same W&B run: its id is kept in the run directory (`wandb-id`).
"""

from __future__ import annotations

import math
import secrets
from pathlib import Path
from typing import Any, Protocol

from robustrl.core.errors import RobustRLError
from robustrl.core.io import atomic_write_text

TRACKERS = ("none", "wandb")


class Tracker(Protocol):
    def log(self, step: int, metrics: dict[str, float]) -> None: ...

    def close(self) -> None: ...


def check_tracker(kind: str) -> None:
    """One line unless `kind` is a known tracker whose package is installed."""
    if kind not in TRACKERS:
        raise RobustRLError(f"unknown run.track '{kind}'; choose one of: {', '.join(TRACKERS)}")
    if kind == "wandb":
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise RobustRLError("run.track=wandb needs Weights & Biases: "
                                "pip install robustrl[wandb]") from None


class WandbTracker:
    def __init__(self, directory: Path, config: dict[str, Any], project: str = "robustrl"):
        import wandb

        id_file = directory / "wandb-id"
        run_id = id_file.read_text().strip() if id_file.exists() else secrets.token_hex(4)
        atomic_write_text(id_file, run_id)
        self.run = wandb.init(project=project, name=directory.name, id=run_id, resume="allow",
                              dir=str(directory), config=config, reinit="create_new")

    def log(self, step: int, metrics: dict[str, float]) -> None:
        scalars = {k: v for k, v in metrics.items()
                   if isinstance(v, (int, float)) and not math.isnan(v)}
        if scalars:
            self.run.log(scalars, step=step)

    def close(self) -> None:
        self.run.finish()


def make_tracker(kind: str, directory: str | Path, config: dict[str, Any]) -> Tracker | None:
    """The tracker `run.track` names (None for "none"); `config` is the run's resolved config."""
    check_tracker(kind)
    return WandbTracker(Path(directory), config) if kind == "wandb" else None


__all__ = ["TRACKERS", "Tracker", "WandbTracker", "check_tracker", "make_tracker"]
