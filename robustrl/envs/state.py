"""Saving a live env mid-episode and restoring it in place, so a resumed run continues exactly.

`get_state(env)` gives bytes, or None when the env cannot be restored; `set_state(env, state)`
puts them back into an env made the same way. Per family:

- `mujoco/`, `maze/`, `mpe/`, `gym/`, `hybrid/platform`, `hybrid/goal` (pure Python or
  MuJoCo): the env's whole object graph is pickled — every wrapper, the time-limit counter,
  `np_random`, the scenario — and swapped into the live env; MuJoCo's MjData as its
  integration state (`mj_getState`: time, qpos, qvel, act, warm start, controls, mocap),
  its MjModel not at all (a copy made the same way has it). Render handles (pygame surfaces)
  are left out: training never renders.
- `traffic/`, `hybrid/traffic-*` (SUMO lives in libsumo or a child process): not restorable.
- anything else (a user's env): restorable when one layer defines `get_state()` and
  `set_state(state)` (its own hook; time-limit counters are saved with it), else not.
- a wrapper added after `robustrl.envs.make` outside `robustrl.envs` (a learned reward, a
  perturbation) holds state of its own elsewhere: not restorable, unless it declares
  `STATELESS = True` (the NaN guard of robustrl.core.guards).
"""

from __future__ import annotations

import copyreg
import io
import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.utils import EzPickle

from robustrl.envs.specs import identity, wrapper_chain

PICKLED_FAMILIES = ("mujoco/", "maze/", "mpe/", "gym/", "hybrid/platform", "hybrid/goal")
"""Ids whose envs are plain Python/MuJoCo objects: a pickle of the object graph is the state."""
_COUNTERS = ("_elapsed_steps", "_has_reset", "_has_updated")
"""Per-layer counters saved alongside a user's own state hook (TimeLimit, order enforcing)."""


def _set_vars(obj: Any, state: dict[str, Any]) -> None:
    obj.__dict__.update(state)


def _mujoco_pair(env: Any) -> tuple[Any, Any] | None:
    """The env's one MjModel and MjData (gymnasium's MuJoCo envs, the mazes' point env), found
    through its attributes; None when it has none or several."""
    try:
        import mujoco
    except ImportError:
        return None
    found: dict[type, dict[int, Any]] = {mujoco.MjModel: {}, mujoco.MjData: {}}
    seen: set[int] = set()
    stack = [env]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if type(obj) in found:
            found[type(obj)][id(obj)] = obj
        elif isinstance(obj, (list, tuple)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            stack.extend(vars(obj).values())
    models, datas = found[mujoco.MjModel], found[mujoco.MjData]
    if len(models) != 1 or len(datas) != 1:
        return None
    return next(iter(models.values())), next(iter(datas.values()))


class _Pickler(pickle.Pickler):
    """Pickles an env's object graph as it is now. MuJoCo's model (the same in a fresh copy)
    is referred to, and its data saved as the integration state (bitwise exact), instead of
    megabytes of both."""

    def __init__(self, file: Any, mujoco_pair: tuple[Any, Any] | None) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.mujoco_pair = mujoco_pair

    def reducer_override(self, obj: Any) -> Any:
        # EzPickle re-creates an env from its constructor arguments: fresh, not this episode.
        if isinstance(obj, EzPickle) and not isinstance(obj, type):
            return copyreg.__newobj__, (type(obj),), dict(vars(obj)), None, None, _set_vars
        return NotImplemented

    def persistent_id(self, obj: Any) -> Any:
        if type(obj).__module__.startswith("pygame"):
            return "render"  # training never renders
        if self.mujoco_pair is not None:
            import mujoco

            model, data = self.mujoco_pair
            if obj is model:
                return "mjmodel"
            if obj is data:
                spec = mujoco.mjtState.mjSTATE_INTEGRATION
                state = np.empty(mujoco.mj_stateSize(model, spec))
                mujoco.mj_getState(model, data, state, spec)
                return ("mjdata", state)
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: Any, target: Any) -> None:
        super().__init__(file)
        self.target = target

    def persistent_load(self, pid: Any) -> Any:
        if pid == "render":
            return None
        import mujoco

        pair = _mujoco_pair(self.target)
        if pair is None:
            raise pickle.UnpicklingError("the saved env ran MuJoCo; this one does not")
        model, data = pair
        if pid == "mjmodel":
            return model
        mujoco.mj_setState(model, data, pid[1], mujoco.mjtState.mjSTATE_INTEGRATION)
        mujoco.mj_forward(model, data)  # derived quantities (positions, contacts) of the state
        return data


def _hook_layer(env: Any) -> Any:
    for layer in wrapper_chain(env):
        if callable(getattr(layer, "get_state", None)) and callable(
                getattr(layer, "set_state", None)):
            return layer
    return None


def _foreign_wrapper(env: Any) -> bool:
    """A robustrl wrapper from outside envs/ that keeps state of its own (a wrapper declaring
    `STATELESS = True`, such as the NaN guard, only checks what passes through)."""
    return any(type(layer).__module__.startswith("robustrl.")
               and not type(layer).__module__.startswith("robustrl.envs")
               and not getattr(type(layer), "STATELESS", False)
               for layer in wrapper_chain(env))


def get_state(env: Any) -> bytes | None:
    """The env's complete state as bytes, or None when it cannot be restored (module doc)."""
    made = identity(env)
    if _foreign_wrapper(env):
        return None
    if made is not None and made[0].startswith(PICKLED_FAMILIES):
        out = io.BytesIO()
        try:
            _Pickler(out, _mujoco_pair(env)).dump(env)
        except (TypeError, pickle.PicklingError, AttributeError):
            return None  # a handle that cannot be copied: not restorable
        return b"P" + out.getvalue()
    hook = _hook_layer(env)
    if hook is None:
        return None
    counters = [{k: v for k, v in vars(layer).items() if k in _COUNTERS}
                if hasattr(layer, "__dict__") else {} for layer in wrapper_chain(env)]
    return b"H" + pickle.dumps((hook.get_state(), counters))


def set_state(env: Any, state: bytes) -> None:
    """Restore what `get_state` gave into `env`, an env made the same way (same id, kwargs)."""
    kind, body = state[:1], state[1:]
    if kind == b"P":
        saved = _Unpickler(io.BytesIO(body), env).load()
        env.__dict__.clear()
        env.__dict__.update(vars(saved))
        return
    hook_state, counters = pickle.loads(body)
    _hook_layer(env).set_state(hook_state)
    for layer, values in zip(wrapper_chain(env), counters):
        for key, value in values.items():
            setattr(layer, key, value)


def env_copies(holder: Any) -> Sequence[Any] | None:
    """The env copies a learner steps: a single env, a SyncVectorEnv's, `SyncEnvs`' or a
    `ParallelEnvs`' list; None for copies in other processes (AsyncVectorEnv, subprocess
    workers)."""
    import gymnasium as gym

    from robustrl.core.vector import SyncEnvs

    if isinstance(holder, gym.vector.SyncVectorEnv | SyncEnvs):
        return list(holder.envs)
    if isinstance(holder, gym.vector.VectorEnv):
        return None
    if isinstance(vars(holder).get("envs") if hasattr(holder, "__dict__") else None, list):
        return holder.envs
    return [holder]


def get_states(holder: Any) -> list[bytes] | None:
    """`get_state` of every copy in `holder` (`env_copies`); None if any is not restorable."""
    copies = env_copies(holder)
    if copies is None:
        return None
    states = [get_state(env) for env in copies]
    return None if any(s is None for s in states) else states


def set_states(holder: Any, states: Sequence[bytes]) -> None:
    copies = env_copies(holder)
    if copies is None or len(copies) != len(states):
        raise ValueError("env copies do not match the saved states")
    for env, state in zip(copies, states):
        set_state(env, state)


__all__ = ["PICKLED_FAMILIES", "env_copies", "get_state", "get_states", "set_state",
           "set_states"]
