"""Offline RL: locally generated maze datasets and the IQL / TD3+BC / AWAC / CQL workers.

    >>> from robustrl.offline import generate_dataset, GenerateConfig, load_dataset, train_offline
    >>> generate_dataset("maze/PointMaze_UMaze-v3", GenerateConfig(steps=10_000), out="umaze.npz")
    >>> result = train_offline("umaze.npz", "iql", steps=5_000, out="runs/iql")
    >>> result.evaluation["normalized_score"]

Modules: `dataset` (the on-disk format and the D4RL/Minari loaders), `generate` (the
D4RL/Minari PointMaze recipe), `common` (what the workers share), `iql`, `td3bc`, `awac`,
`cql` (one worker each), `tdmpc` (the IQL-TD-MPC manager and its intents), `train`
(training from a dataset file into a run directory), `cli` (`robustrl data ...` and
`robustrl train --dataset`). Names are imported lazily, so `import robustrl.offline` stays
cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "OfflineDataset": "dataset", "load_dataset": "dataset", "save_dataset": "dataset",
    "GenerateConfig": "generate", "generate_dataset": "generate", "reference_returns": "generate",
    "GridPlanner": "generate", "WaypointController": "generate",
    "train_offline": "train", "load_worker": "train", "evaluate_worker": "train",
    "WORKERS": "train", "worker_class": "train",
    "IQLTDMPC": "tdmpc", "IQLTDMPCConfig": "tdmpc", "train_manager": "tdmpc",
    "load_manager": "tdmpc",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'robustrl.offline' has no attribute '{name}'")
    return getattr(importlib.import_module(f"robustrl.offline.{_EXPORTS[name]}"), name)


__all__ = sorted(_EXPORTS)
