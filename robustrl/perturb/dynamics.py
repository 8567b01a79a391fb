"""Dynamics perturbations: scale simulator parameters while the perturbation is on.

Three simulators are supported, found by what the env exposes (no robustrl.envs import):
- MuJoCo (`env.unwrapped.model` is an `MjModel`): body mass (+ inertia, i.e. a denser body of
  the same shape), geom friction, gravity, actuator gain, joint damping;
- particle worlds (mpe2, `env.unwrapped.world`): agent mass, velocity damping, max speed;
- traffic (a sumo-rl `SumoEnvironment` reachable from the env): demand scale and route file,
  lane speed limits.

`activate` reads the current values and writes value * factor; `deactivate` writes back what it
read. The wrapper deactivates before every inner reset and on close, and activates after the
reset, so values never compound across episodes, stacked dynamics perturbations multiply,
and an env whose reset rewrites a parameter (mpe2 curricula) is scaled from its new value.
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable
from typing import Any

import numpy as np

from robustrl.core.errors import RobustRLError
from robustrl.envs.worker import find_worker
from robustrl.perturb.base import EnvView, Perturbation

_NEEDS = {
    "mujoco": "a MuJoCo env (env.unwrapped.model)",
    "particle": "a particle world (mpe2, env.unwrapped.world)",
    "traffic": "a sumo-rl traffic env (a SumoEnvironment reachable from env.unwrapped)",
}
_BACKENDS = {
    "dyn-mass": ("mujoco", "particle"),
    "dyn-friction": ("mujoco",),
    "dyn-gravity": ("mujoco",),
    "dyn-gain": ("mujoco",),
    "dyn-damping": ("particle", "mujoco"),
    "dyn-maxspeed": ("particle",),
    "dyn-inflow": ("traffic",),
    "dyn-speed": ("traffic",),
}


class _Scaled:
    """Numpy views (MuJoCo) or (object, attribute) pairs, scaled in place and restored."""

    def __init__(self, arrays: list[tuple[np.ndarray, Any]] = (),
                 attrs: list[tuple[Any, str]] = (), after: Callable[[], None] | None = None):
        self.arrays, self.attrs = list(arrays), list(attrs)
        self.after = after
        """Runs after every write (MuJoCo: recompute the constants derived from masses)."""
        self.saved_arrays: list[np.ndarray] = []
        self.saved_attrs: list[Any] = []

    def apply(self, factor: float) -> None:
        self.saved_arrays = [arr[idx].copy() for arr, idx in self.arrays]
        self.saved_attrs = [getattr(obj, name) for obj, name in self.attrs]
        for (arr, idx), saved in zip(self.arrays, self.saved_arrays, strict=True):
            arr[idx] = saved * factor
        for (obj, name), saved in zip(self.attrs, self.saved_attrs, strict=True):
            setattr(obj, name, saved * factor)
        if self.after is not None:
            self.after()

    def restore(self) -> None:
        if len(self.saved_arrays) != len(self.arrays) or len(self.saved_attrs) != len(self.attrs):
            return  # never applied
        for (arr, idx), saved in zip(self.arrays, self.saved_arrays, strict=True):
            arr[idx] = saved
        for (obj, name), saved in zip(self.attrs, self.saved_attrs, strict=True):
            setattr(obj, name, saved)
        self.saved_arrays, self.saved_attrs = [], []
        if self.after is not None:
            self.after()


def _mujoco_model(env: Any) -> Any:
    model = getattr(env.unwrapped, "model", None)
    return model if type(model).__name__ == "MjModel" else None


def _mujoco(p: Perturbation, model: Any) -> _Scaled:
    kind, everything = p.spec.kind, slice(None)
    if p.spec.get("agents"):
        raise RobustRLError(f"{kind}: agents= is for particle worlds; on MuJoCo use bodies=")
    if kind == "dyn-mass":
        import mujoco

        rows = _body_ids(kind, model, p.spec.get("bodies"))
        scratch = mujoco.MjData(model)  # mj_setConst overwrites the state of the data it gets

        def set_const() -> None:
            # subtree masses and inverse weights (used by the contact solver) follow the masses,
            # as if the model had been compiled with them; exact on restore
            mujoco.mj_setConst(model, scratch)

        return _Scaled([(model.body_mass, rows), (model.body_inertia, rows)], after=set_const)
    if kind == "dyn-friction":
        return _Scaled([(model.geom_friction, everything)])
    if kind == "dyn-gravity":
        return _Scaled([(model.opt.gravity, everything)])
    if kind == "dyn-damping":
        return _Scaled([(model.dof_damping, everything)])
    # dyn-gain: force = gain * ctrl + bias for fixed/affine actuators; scale both terms.
    rows = np.flatnonzero(np.asarray(model.actuator_gaintype) <= 1)
    if rows.size == 0:
        raise RobustRLError(f"{kind}: this MuJoCo model has no actuator with a fixed or affine "
                            "gain to scale")
    cols = np.arange(3)
    return _Scaled([(model.actuator_gainprm, np.ix_(rows, cols)),
                    (model.actuator_biasprm, np.ix_(rows, cols))])


def _body_ids(kind: str, model: Any, names: tuple[str, ...] | None) -> Any:
    if names is None:
        return slice(None)
    import mujoco

    ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, n) for n in names]
    unknown = [n for n, i in zip(names, ids, strict=True) if i < 0]
    if unknown:
        valid = [model.body(i).name for i in range(1, model.nbody)]
        raise RobustRLError(f"{kind}: unknown body {', '.join(unknown)}; this model's bodies are "
                            f"{', '.join(valid)}")
    return np.asarray(ids)


def _particle_world(env: Any) -> Any:
    world = getattr(env.unwrapped, "world", None)
    return world if hasattr(world, "agents") and hasattr(world, "damping") else None


def _particle(p: Perturbation, world: Any, view: EnvView) -> _Scaled:
    kind = p.spec.kind
    if p.spec.get("bodies"):
        raise RobustRLError(f"{kind}: bodies= is for MuJoCo; in particle worlds use agents=")
    if kind == "dyn-damping":
        if not 0 <= world.damping * p.strength <= 1:
            raise RobustRLError(f"{kind}:{p.strength:g} makes the damping "
                                f"{world.damping * p.strength:g}; it must stay in [0, 1], use a "
                                f"factor <= {1 / world.damping:g}")
        return _Scaled(attrs=[(world, "damping")])
    agents = [a for a in world.agents if a.name in {str(t) for t in p.targets}]
    if kind == "dyn-mass":
        return _Scaled(attrs=[(a, "initial_mass") for a in agents])
    capped = [a for a in agents if a.max_speed is not None]
    if not capped:
        raise RobustRLError(f"{kind}: the agents of {view.name} have no max speed to scale; "
                            "use dyn-damping or dyn-mass")
    return _Scaled(attrs=[(a, "max_speed") for a in capped])


def find_sumo(env: Any) -> Any:
    """The sumo-rl `SumoEnvironment` inside `env`: the env itself or an attribute of a wrapper
    or adapter, searched breadth-first three attribute levels deep (modules skipped); or None."""
    frontier, seen = [env, getattr(env, "unwrapped", None)], set()
    for _ in range(4):
        nxt = []
        for obj in frontier:
            if obj is None or id(obj) in seen or isinstance(obj, types.ModuleType):
                continue
            seen.add(id(obj))
            if any(c.__name__ == "SumoEnvironment" for c in type(obj).__mro__):
                return obj
            nxt.extend(v for v in getattr(obj, "__dict__", {}).values() if hasattr(v, "__dict__"))
        frontier = nxt[:256]
    return None


class _Traffic:
    """sumo-rl: demand scale via `simulation.setScale`, lane speed limits via `lane.setMaxSpeed`
    (libsumo and TraCI alike, so they can switch on mid-episode), and the route file sumo-rl
    reads when it starts the simulation at reset (so a route swap takes effect at a reset)."""

    def __init__(self, p: Perturbation, sumo_env: Any):
        self.kind, self.env = p.spec.kind, sumo_env
        self.route = p.spec.get("route")
        self.nominal_route = getattr(sumo_env, "_route", None)
        if self.route is not None:
            if self.nominal_route is None:
                raise RobustRLError(f"{self.kind}: this traffic env keeps no route file to swap")
            if not os.path.isfile(self.route):
                raise RobustRLError(f"{self.kind}: route file '{self.route}' does not exist")
        self.saved: Any = None

    @property
    def conn(self) -> Any:
        return getattr(self.env, "sumo", None)

    def before_reset(self) -> None:
        if self.route is not None:
            self.env._route = self.route

    def apply(self, factor: float) -> None:
        conn = self.conn
        if conn is None:
            raise RobustRLError(f"{self.kind}: the SUMO simulation is not running; reset the env "
                                "first")
        if self.kind == "dyn-inflow":
            self.saved = conn.simulation.getScale()
            conn.simulation.setScale(self.saved * factor)
        else:
            lanes = conn.lane.getIDList()
            self.saved = {lane: conn.lane.getMaxSpeed(lane) for lane in lanes}
            for lane, speed in self.saved.items():
                conn.lane.setMaxSpeed(lane, speed * factor)

    def restore(self) -> None:
        if self.route is not None:
            self.env._route = self.nominal_route
        conn, saved, self.saved = self.conn, self.saved, None
        if conn is None or saved is None:
            return  # the simulation is gone: nothing left to restore
        if self.kind == "dyn-inflow":
            conn.simulation.setScale(saved)
        else:
            for lane, speed in saved.items():
                conn.lane.setMaxSpeed(lane, speed)


class Dynamics(Perturbation):
    """dyn-*: a simulator parameter times `strength` while the perturbation is on."""

    def bind(self, view: EnvView) -> None:
        super().bind(view)
        kind = self.spec.kind
        for backend in _BACKENDS[kind]:
            if backend == "mujoco" and (model := _mujoco_model(view.env)) is not None:
                self.backend, self.scaled = backend, _mujoco(self, model)
                return
            if backend == "particle" and (world := _particle_world(view.env)) is not None:
                self.backend, self.scaled = backend, _particle(self, world, view)
                return
            if backend == "traffic" and (sumo_env := find_sumo(view.env)) is not None:
                self.backend, self.scaled = backend, _Traffic(self, sumo_env)
                return
        if "traffic" in _BACKENDS[kind] and find_worker(view.env) is not None:
            raise RobustRLError(f"{kind} needs the traffic simulation in this process, but this "
                                "env runs in a worker (another traffic env was alive when it was "
                                "made); close that env first")
        needs = " or ".join(_NEEDS[b] for b in _BACKENDS[kind])
        raise RobustRLError(f"{kind} does not apply to {view.name}: it needs {needs}")

    def params(self) -> dict[str, Any]:
        extra = {k: v for k in ("bodies", "agents", "route")
                 if (v := self.spec.get(k)) is not None}
        return {"factor": self.strength, "simulator": self.backend,
                **{k: list(v) if isinstance(v, tuple) else v for k, v in extra.items()}}

    def before_reset(self) -> None:
        if isinstance(self.scaled, _Traffic):
            self.scaled.before_reset()

    def activate(self) -> None:
        self.scaled.apply(self.strength)

    def deactivate(self) -> None:
        self.scaled.restore()
