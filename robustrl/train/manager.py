"""Training the IQL-TD-MPC manager (`robustrl.agents.tdmpc`) on a dataset.

A run directory holds config.toml ([run] agent = "tdmpc", dataset, steps, seed; [agent]),
metrics.csv (tb/: TensorBoard) and manager.pt, written atomically at the end. A worker then
learns on [observation, goal, intent] with `--set run.manager=DIR` (`robustrl.train.offline`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import tomli_w

from robustrl.agents import resolve_config
from robustrl.agents.offline import torch_device
from robustrl.agents.tdmpc import IQLTDMPC, AbstractSequences, save_manager
from robustrl.core.config import to_dict
from robustrl.core.errors import RobustRLError
from robustrl.core.guards import DATA_WAY_OUT, check_finite, check_logged, modules_of
from robustrl.core.io import atomic_write_text
from robustrl.core.logging import MetricsLogger, host_floats
from robustrl.core.normalizer import FixedNormalizer
from robustrl.core.progress import progress
from robustrl.data.dataset import load_dataset
from robustrl.train.offline import split_overrides
from robustrl.train.rundir import run_provenance


def train_manager(dataset: str | Path, steps: int, out: str | Path | None = None,
                  seed: int = 0, overrides: dict[str, Any] | None = None,
                  show_progress: bool = True, log_every: int = 1000,
                  tensorboard: bool = True) -> IQLTDMPC:
    """Train the manager for `steps` updates on `dataset`; with `out`, a run directory.

    `overrides`: manager hyperparameters (`k`, `agent.horizon`, ...) and `run.log_every`,
    `run.tensorboard`, `run.device`."""
    if steps < 1 or seed < 0:
        raise RobustRLError(f"--steps must be >= 1 and --seed >= 0, got {steps} and {seed}")
    data = load_dataset(dataset)
    for key in ("observations", "rewards"):
        check_finite(getattr(data, key), f"dataset {dataset}: {key}", DATA_WAY_OUT)
    run_keys, agent_keys = split_overrides(overrides)
    config = resolve_config(IQLTDMPC.name, data.env_id, agent_keys)
    log_every = int(run_keys.pop("log_every", log_every))
    tensorboard = bool(run_keys.pop("tensorboard", tensorboard))
    device = torch_device(str(run_keys.pop("device", "cpu")))
    if run_keys:
        raise RobustRLError(f"unknown run key(s) for the manager: {', '.join(run_keys)}; "
                            "valid: run.log_every, run.tensorboard, run.device")
    inputs, _ = data.policy_inputs()
    sequences = AbstractSequences(inputs, data.rewards, data.episode_ends, config.k,
                                  config.horizon, config.gamma, seed, device)
    manager = IQLTDMPC(inputs.shape[1], config, seed, FixedNormalizer.fit(inputs), device)
    out = Path(out) if out is not None else None
    logger = None
    if out is not None:
        if (out / "config.toml").exists():
            raise RobustRLError(f"{out} already holds a run; choose another --out")
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.toml", tomli_w.dumps({
            "run": {"agent": manager.name, "dataset": str(dataset), "steps": steps,
                    "seed": seed}, "agent": to_dict(config),
            "provenance": run_provenance(data.env_id, {})}))
        logger = MetricsLogger(out, tensorboard=tensorboard)
    bar = progress(steps, desc=f"{manager.name} {Path(dataset).name}", unit="update") \
        if show_progress else None
    tick = time.perf_counter()
    try:
        while manager.num_updates < steps:
            metrics = manager.update(*sequences.sample(config.batch_size))
            n = manager.num_updates
            if n % log_every == 0 or n == steps:
                metrics = host_floats(metrics)
                now = time.perf_counter()
                metrics["updates_per_s"] = log_every / max(now - tick, 1e-9)
                tick = now
                check_logged(n, metrics, modules_of(manager))
                if logger is not None:
                    logger.log(n, metrics)
                if bar is not None:
                    bar.update(n - bar.n)
    finally:
        if bar is not None:
            bar.close()
        if logger is not None:
            logger.close()
    if out is not None:
        save_manager(manager, out / "manager.pt")
    return manager
