"""A run directory's config.toml, lock and restart bookkeeping, shared by the online run
(`run.py`) and the offline one (`offline.py`) so that neither imports the other."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import IO, Any

import tomli_w

from robustrl.core.config import read_toml
from robustrl.core.errors import RobustRLError
from robustrl.core.io import atomic_write_text


def read_run_toml(directory: str | Path) -> dict[str, Any]:
    """The parsed config.toml of a run directory (online or offline); one line if absent or
    malformed."""
    path = Path(directory) / "config.toml"
    if not Path(directory).is_dir():
        raise RobustRLError(f"run directory {directory} not found")
    if not path.is_file():
        raise RobustRLError(f"{directory} is not a run directory (no config.toml)")
    data = read_toml(path, "run config")
    if not isinstance(data.get("run"), dict):
        raise RobustRLError(f"{path} has no [run] table (emptied or edited?); restore it or "
                            "train into a new --out")
    return data


def run_provenance(env_id: str | None, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """config.toml's `[provenance]`: package versions and git commit, plus the env's fully
    resolved keyword arguments (its spec's defaults under the run's overrides)."""
    from robustrl.core.provenance import provenance
    from robustrl.envs import spec

    resolved = dict(env_kwargs)
    if env_id is not None:
        try:
            resolved = {**spec(env_id).kwargs, **env_kwargs}
        except RobustRLError:  # an unregistered id fails later, with its own message
            pass
    plain = (str, int, float, bool, list, tuple, dict)  # what TOML writes; the rest as repr
    clean = {k: v if isinstance(v, plain) else repr(v) for k, v in resolved.items()
             if v is not None}
    return {**provenance(), "env_kwargs": clean}


LOCK = ".lock"
RUN_FILES = ("config.toml", "metrics.csv", "checkpoint.pt", "reward.pt", "agent.pt", "best.pt",
             "tb")
"""What a run writes into its directory (`clear_run` removes exactly these)."""


def lock_run(directory: str | Path) -> IO[str]:
    """Take the run directory's advisory lock (`fcntl.flock` on `.lock`): one process per run.

    Held until the returned file is closed or the process ends; the kernel drops it when a
    process dies, so a killed run never blocks the next. A second process gets one line."""
    path = Path(directory) / LOCK
    if not Path(directory).is_dir():
        raise RobustRLError(f"run directory {directory} not found")
    try:
        handle = open(path, "a+")  # noqa: SIM115 - held open for the run's lifetime
    except OSError as e:
        raise RobustRLError(f"cannot write {path} ({e.strerror}); the run directory must be "
                            "writable") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        pid = handle.read().strip() or "?"
        handle.close()
        raise RobustRLError(f"{directory} is in use by another robustrl process (pid {pid}); "
                            "wait for it to finish or stop it, or use another --out") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def record_inexact_resume(directory: str | Path, step: int, why: str) -> None:
    """Note in config.toml (`[[resumes]]`) that the run resumed at `step` without the env
    state, so what follows is not what an uninterrupted run would have done."""
    data = read_run_toml(directory)
    data.setdefault("resumes", []).append({"step": step, "exact": False, "why": why})
    atomic_write_text(Path(directory) / "config.toml", tomli_w.dumps(data))


def checkpoint_is_exact(directory: str | Path) -> bool:
    """Whether resuming the run in `directory` continues it exactly: nothing checkpointed yet
    (it restarts from scratch) or a checkpoint that holds its episodes in progress; a
    directory that already resumed inexactly once stays inexact."""
    directory = Path(directory)
    if "resumes" in read_run_toml(directory):
        return False
    path = directory / "checkpoint.pt"
    if not path.exists():
        return True
    from robustrl.agents.base import read_checkpoint

    try:
        return bool(read_checkpoint(path).get("exact", False))
    except RobustRLError:
        return False


def clear_run(directory: str | Path) -> None:
    """Remove what a run wrote (`RUN_FILES`), so it can be trained again from scratch."""
    for name in RUN_FILES:
        path = Path(directory) / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def check_agent_file(path: Path, expected: dict[str, Any]) -> None:
    """Refuse, in one line, an agent file (agent.pt / checkpoint.pt) that another run wrote:
    its agent, env id, env kwargs, seed or resolved agent config differ from `expected`
    (config.toml's)."""
    from robustrl.agents.base import read_checkpoint

    saved = read_checkpoint(path)
    differ = [key for key, value in expected.items()
              if json.dumps(saved.get(key), sort_keys=True, default=str)
              != json.dumps(value, sort_keys=True, default=str)]
    if differ:
        raise RobustRLError(
            f"{path} does not belong to the run in {path.parent}: its {', '.join(differ)} "
            f"differ from config.toml ({saved.get('agent')} on {saved.get('env_id')} vs "
            f"{expected.get('agent')} on {expected.get('env_id')}); remove it and resume the run, "
            "or evaluate the run it came from")
