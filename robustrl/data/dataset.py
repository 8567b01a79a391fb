"""Offline datasets: robustrl's on-disk format and loaders for D4RL and Minari files.

Format (written by `save_dataset`, produced by `robustrl data generate`): one `.npz` file
(numpy's zip of arrays, loaded with `allow_pickle=False`) holding N transitions under the
D4RL key names:

    observations       (N, obs_dim) float32   the env's `observation` (PointMaze: x, y, vx, vy)
    actions            (N, act_dim) float32   the action applied (after noise and clipping)
    rewards            (N,)         float32   the env's own reward (sparse or dense, per env id)
    next_observations  (N, obs_dim) float32   the observation after the step (always valid)
    terminals          (N,)         bool      the MDP ended (never, on the continuing mazes)
    timeouts           (N,)         bool      an episode ended without termination: the goal
                                              was reached (a new goal follows, as in Minari)
                                              or the per-goal step limit ran out (env reset)
    infos/goal         (N, 2)       float32   the goal the step was rewarded against
    infos/qpos         (N, 2)       float32   position before the step
    infos/qvel         (N, 2)       float32   velocity before the step
    infos/success      (N,)         bool      the step ended within the goal radius
    infos/reward_sparse(N,)         float32   1[distance <= goal radius] after the step
    infos/reward_dense (N,)         float32   exp(-distance) after the step
    metadata           ()           str       JSON: env_id, the generation recipe and seed,
                                              versions, and the reference returns
                                              `ref_min_score` (random policy) and
                                              `ref_max_score` (planner-controller), both
                                              measured on the same env version

A goal-conditioned learner sees [observation, goal] and bootstraps from
[next_observation, goal] (the same goal). Normalized score =
100 * (R - ref_min_score) / (ref_max_score - ref_min_score).

`load_dataset(path)` also reads, lazily importing h5py:
- a D4RL-style HDF5 file (`observations`, `actions`, `rewards`, `terminals`, optional
  `timeouts`, `next_observations`, `infos/goal`, ...); without `next_observations` the next
  observation is the following row, and rows that end in a timeout (or the file) are dropped;
- a Minari dataset folder (`data/main_data.hdf5` with `episode_*` groups; Dict observations
  give `observation` and `desired_goal`), with its metadata (env spec, reference scores).
Files without reference returns can get them with `robustrl.data.generate.reference_returns`.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robustrl.core.errors import RobustRLError
from robustrl.core.io import atomic_write_bytes

FORMAT = "robustrl-offline-1"
REQUIRED = ("observations", "actions", "rewards", "terminals")


@dataclass
class OfflineDataset:
    """Flat transitions (D4RL names) plus metadata; see the module docstring."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    infos: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def goals(self) -> np.ndarray | None:
        return self.infos.get("goal")

    @property
    def env_id(self) -> str | None:
        return self.metadata.get("env_id")

    @property
    def episode_ends(self) -> np.ndarray:
        """True on each episode's last row: a terminal, a timeout, or the file's last row
        (a file may stop mid-episode)."""
        ends = self.terminals | self.timeouts
        ends[-1:] = True
        return ends

    @property
    def num_episodes(self) -> int:
        return int(self.episode_ends.sum())

    def policy_inputs(self) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, next inputs): observations with the goal appended when there is one."""
        if self.goals is None:
            return self.observations, self.next_observations
        return (np.concatenate([self.observations, self.goals], 1),
                np.concatenate([self.next_observations, self.goals], 1))

    def normalized_score(self, episode_return: float) -> float:
        """100 * (R - random) / (planner - random), with this dataset's reference returns."""
        low, high = self.metadata.get("ref_min_score"), self.metadata.get("ref_max_score")
        if low is None or high is None:
            raise RobustRLError("the dataset has no reference returns (ref_min_score, "
                                "ref_max_score); measure them with reference_returns()")
        if high == low:
            raise RobustRLError("the dataset's reference returns are equal; cannot normalize")
        return 100.0 * (episode_return - low) / (high - low)


# ----------------------------------------------------------------------------- writing
def save_dataset(path: str | Path, data: OfflineDataset) -> Path:
    """Write `data` as robustrl's .npz format, atomically (a killed write leaves no file)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise RobustRLError(f"dataset file {path} must end in .npz")
    arrays = {"observations": data.observations, "actions": data.actions,
              "rewards": data.rewards, "next_observations": data.next_observations,
              "terminals": data.terminals, "timeouts": data.timeouts,
              **{f"infos/{k}": v for k, v in data.infos.items()},
              "metadata": np.array(json.dumps({"format": FORMAT, **data.metadata}))}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
    return path


# ----------------------------------------------------------------------------- reading
def load_dataset(path: str | Path) -> OfflineDataset:
    """Read a robustrl .npz, a D4RL-style .hdf5/.h5 file, or a Minari dataset folder."""
    path = Path(path)
    if not path.exists():
        raise RobustRLError(f"dataset {path} not found (make one with `robustrl data "
                            "generate ENV --steps N --out FILE.npz`)")
    if path.is_dir():
        return _load_minari(path)
    if path.suffix == ".npz":
        return _load_npz(path)
    if path.suffix in (".hdf5", ".h5"):
        return _from_flat(_read_hdf5(path), path, {})
    raise RobustRLError(f"dataset {path}: unknown format; expected .npz (robustrl), "
                        ".hdf5/.h5 (D4RL) or a Minari dataset folder")


def peek_env_id(path: str | Path) -> str | None:
    """The env id in a robustrl .npz's metadata without loading the arrays (a run resolves its
    per-env hyperparameters before the data); None for other files or a broken one, which
    `load_dataset` reports properly later."""
    if Path(path).suffix != ".npz" or not Path(path).is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            return json.loads(str(f["metadata"])).get("env_id") if "metadata" in f else None
    except Exception:
        return None


def _load_npz(path: Path) -> OfflineDataset:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:  # zip/format errors come in many types
        raise RobustRLError(f"dataset {path} is corrupt or not an .npz file "
                            f"({type(e).__name__})") from None
    metadata: dict[str, Any] = {}
    if "metadata" in arrays:
        try:
            metadata = json.loads(str(arrays.pop("metadata")))
        except json.JSONDecodeError:
            raise RobustRLError(f"dataset {path}: its metadata is not valid JSON") from None
    return _from_flat(arrays, path, metadata)


def _h5py(path: Path):
    try:
        import h5py
    except ImportError:
        raise RobustRLError(f"reading {path} needs h5py; pip install h5py") from None
    return h5py


def _read_hdf5(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of an HDF5 file, keyed by its path ("infos/goal")."""
    h5py = _h5py(path)
    out: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, obj: out.__setitem__(name, obj[()])
                         if isinstance(obj, h5py.Dataset) else None)
    except OSError as e:
        raise RobustRLError(f"dataset {path} is not a readable HDF5 file ({e})") from None
    return out


def _from_flat(arrays: dict[str, np.ndarray], path: Path,
               metadata: dict[str, Any]) -> OfflineDataset:
    """Check a D4RL-keyed dict of arrays and build the dataset (one-line errors)."""
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise RobustRLError(f"dataset {path}: missing key(s) {', '.join(missing)}; a D4RL-style "
                            f"dataset needs {', '.join(REQUIRED)}")
    obs = _matrix(arrays["observations"], "observations", path)
    n = len(obs)
    actions = _matrix(arrays["actions"], "actions", path, n)
    rewards = _vector(arrays["rewards"], "rewards", path, n).astype(np.float32)
    terminals = _vector(arrays["terminals"], "terminals", path, n).astype(bool)
    timeouts = (_vector(arrays["timeouts"], "timeouts", path, n).astype(bool)
                if "timeouts" in arrays else np.zeros(n, bool))
    infos = {k[len("infos/"):]: np.asarray(v) for k, v in arrays.items()
             if k.startswith("infos/")}
    for key, value in infos.items():
        if value.ndim == 0 or len(value) != n:
            raise RobustRLError(f"dataset {path}: infos/{key} has shape {value.shape}; "
                                f"expected {n} rows like observations")
    if "goal" in infos:
        infos["goal"] = _matrix(infos["goal"], "infos/goal", path, n)
    if "next_observations" in arrays:
        next_obs = _matrix(arrays["next_observations"], "next_observations", path, n)
        if next_obs.shape != obs.shape:
            raise RobustRLError(f"dataset {path}: next_observations has shape {next_obs.shape}, "
                                f"observations {obs.shape}")
    else:  # D4RL without next_observations: the next row, except across episode ends
        next_obs = np.concatenate([obs[1:], obs[-1:]])
        keep = ~timeouts.copy()
        keep[-1] = bool(terminals[-1])
        if not keep.all():
            ends = np.flatnonzero(~keep)
            timeouts[ends - 1] |= ends > 0  # the row before a dropped one now ends the episode
            obs, actions, rewards = obs[keep], actions[keep], rewards[keep]
            next_obs, terminals, timeouts = next_obs[keep], terminals[keep], timeouts[keep]
            infos = {k: v[keep] for k, v in infos.items()}
    if len(obs) == 0:
        raise RobustRLError(f"dataset {path} holds no transitions")
    return OfflineDataset(obs, actions, rewards, next_obs, terminals, timeouts, infos,
                          {"source": str(path), **metadata})


def _matrix(value: Any, name: str, path: Path, n: int | None = None) -> np.ndarray:
    value = np.asarray(value)
    if value.ndim == 1 and name != "observations":
        value = value[:, None]
    if value.ndim != 2 or not np.issubdtype(value.dtype, np.number):
        raise RobustRLError(f"dataset {path}: {name} must be a 2-D numeric array, "
                            f"got shape {value.shape} dtype {value.dtype}")
    if n is not None and len(value) != n:
        raise RobustRLError(f"dataset {path}: {name} has {len(value)} rows, observations {n}")
    return value.astype(np.float32, copy=False)


def _vector(value: Any, name: str, path: Path, n: int) -> np.ndarray:
    value = np.asarray(value)
    if value.ndim == 2 and value.shape[1] == 1:
        value = value[:, 0]
    if value.ndim != 1 or len(value) != n:
        raise RobustRLError(f"dataset {path}: {name} must have shape ({n},), got {value.shape}")
    if not (np.issubdtype(value.dtype, np.number) or value.dtype == bool):
        raise RobustRLError(f"dataset {path}: {name} must be numeric, got {value.dtype}")
    return value


# ----------------------------------------------------------------------------- Minari
def _load_minari(folder: Path) -> OfflineDataset:
    """A Minari dataset folder (the one holding data/main_data.hdf5), flattened to D4RL rows."""
    candidates = [folder / "data" / "main_data.hdf5", folder / "main_data.hdf5"]
    main = next((p for p in candidates if p.is_file()), None)
    if main is None:
        raise RobustRLError(f"{folder} is not a Minari dataset folder (no data/main_data.hdf5;"
                            " Minari's arrow format is not read: re-create it with "
                            "data_format='hdf5')")
    h5py = _h5py(main)
    metadata: dict[str, Any] = {}
    for meta in (folder / "data" / "metadata.json", folder / "metadata.json"):
        if meta.is_file():
            metadata.update(json.loads(meta.read_text()))
    parts: dict[str, list[np.ndarray]] = {k: [] for k in (
        "observations", "next_observations", "actions", "rewards", "terminals", "timeouts",
        "infos/goal")}
    try:
        with h5py.File(main, "r") as f:
            metadata.update({k: _plain(v) for k, v in f.attrs.items()})
            names = sorted((k for k in f if k.startswith("episode_")),
                           key=lambda k: int(k.split("_")[-1]))
            if not names:
                raise RobustRLError(f"Minari dataset {folder} has no episode_* groups")
            for name in names:
                _minari_episode(f[name], parts, h5py, folder)
    except OSError as e:
        raise RobustRLError(f"Minari dataset {folder}: unreadable HDF5 ({e})") from None
    arrays = {k: np.concatenate(v) for k, v in parts.items() if v}
    dataset = _from_flat(arrays, folder, _minari_metadata(metadata))
    return dataset


def _minari_episode(group: Any, parts: dict[str, list[np.ndarray]], h5py: Any,
                    folder: Path) -> None:
    for key in ("observations", "actions", "rewards", "terminations", "truncations"):
        if key not in group:
            raise RobustRLError(f"Minari dataset {folder}: {group.name} has no '{key}'")
    observations = group["observations"]
    goal = None
    if isinstance(observations, h5py.Group):  # Dict observation (goal-conditioned envs)
        if "observation" not in observations:
            raise RobustRLError(f"Minari dataset {folder}: Dict observations without an "
                                "'observation' key are not supported")
        if "desired_goal" in observations:
            goal = observations["desired_goal"][()]
        observations = observations["observation"]
    obs = observations[()]
    t = len(group["rewards"])
    if len(obs) != t + 1:
        raise RobustRLError(f"Minari dataset {folder}: {group.name} has {len(obs)} "
                            f"observations for {t} steps (expected {t + 1})")
    truncations = group["truncations"][()].astype(bool)
    terminations = group["terminations"][()].astype(bool)
    if t and not (truncations[-1] or terminations[-1]):
        truncations[-1] = True  # every episode ends somewhere
    parts["observations"].append(obs[:-1])
    parts["next_observations"].append(obs[1:])
    parts["actions"].append(group["actions"][()])
    parts["rewards"].append(group["rewards"][()])
    parts["terminals"].append(terminations)
    parts["timeouts"].append(truncations)
    if goal is not None:
        parts["infos/goal"].append(goal[:-1])


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _minari_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """Map Minari's metadata (env_spec JSON, ref scores) onto robustrl's keys."""
    out = {"minari": {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool))}}
    spec = meta.get("env_spec")
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError:
            spec = None
    if isinstance(spec, dict) and spec.get("id"):
        out["env_id"] = registry_id(spec["id"])
        out["eval_env_kwargs"] = {k: v for k, v in (spec.get("kwargs") or {}).items()
                                  if k in ("continuing_task", "reset_target")}
    for key in ("ref_min_score", "ref_max_score"):
        if meta.get(key) is not None:
            out[key] = float(meta[key])
    return out


def registry_id(gym_id: str) -> str:
    """A Gymnasium id as a robustrl env id ("PointMaze_UMaze-v3" -> "maze/PointMaze_UMaze-v3")."""
    from robustrl.envs import list_envs

    for env_id in list_envs():
        if env_id.split("/", 1)[-1] == gym_id:
            return env_id
    return f"gym/{gym_id}"
