"""Reading a run directory's config.toml, shared by the online run (`run.py`) and the offline
one (`offline.py`) so that neither imports the other."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from robustrl.core.errors import RobustRLError


def read_run_toml(directory: str | Path) -> dict[str, Any]:
    """The parsed config.toml of a run directory (online or offline); one line if absent or
    malformed."""
    path = Path(directory) / "config.toml"
    if not Path(directory).is_dir():
        raise RobustRLError(f"run directory {directory} not found")
    if not path.is_file():
        raise RobustRLError(f"{directory} is not a run directory (no config.toml)")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise RobustRLError(f"{path} is malformed: {e}") from None
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
