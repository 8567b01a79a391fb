"""One SUMO simulation and its lights (`TrafficCore`), shared by every traffic adapter, and
libsumo's one-simulation-per-process slot.

libsumo runs SUMO inside the Python process and holds one simulation per process. The slot is
held by the live `TrafficCore` (made, and neither closed nor garbage-collected); `open_env`
builds an env in this process while the slot is free and in a worker process otherwise. The
rule as users see it is documented once, in `robustrl.envs.traffic`.
"""

from __future__ import annotations

import functools
import gc
import weakref
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from robustrl.core.errors import RobustRLError
from robustrl.envs.traffic_config import TrafficConfig, load_sumo_rl, resolve_file
from robustrl.envs.worker import spawn

FACTORS: dict[str, str] = {
    "queue_length": "vehicles halting (speed < 0.1 m/s) on the light's approach lanes",
    "waiting_time": "summed waiting time (s) of the vehicles on the approach lanes",
    "delay": "sum over approach-lane vehicles of 1 - speed / lane speed limit",
    "throughput": "vehicles that left the approach lanes (crossed) since the last step",
    "emergency_stops": "vehicle-seconds of braking harder than hard_brake_decel on approaches",
    "phase_switch": "1.0 if the light switched its green phase at this step, else 0.0",
}
"""Reward factors reported per traffic light on every step; `envs/traffic.toml` documents them
with their direction and default ranking. Queue, waiting time and delay are read at the decision
step; throughput and emergency stops are counted every simulated second in between."""


# ---------------------------------------------------------------------------------------------
# One simulation per process: who holds it, and where an env is built when it is taken.

_OWNER: weakref.ref[TrafficCore] | None = None
"""The live in-process `TrafficCore` (libsumo's one slot); a dead reference frees it."""

BUSY = ("libsumo runs one simulation per process and another traffic env in this process is "
        "alive; close it first (agent.close() closes an agent's envs), or make this one with "
        "robustrl.envs.make, which then runs it in a worker process")


def _slot_taken(by: TrafficCore | None = None) -> bool:
    """Whether this process's simulation belongs to something other than `by`: another live
    `TrafficCore`, or a simulation started outside robustrl."""
    owner = _OWNER() if _OWNER is not None else None
    if owner is not None:
        return owner is not by
    load_sumo_rl()
    import traci

    return bool(traci.isLoaded())


def _release(core: TrafficCore) -> None:
    global _OWNER
    if _OWNER is not None and _OWNER() is core:
        _OWNER = None


def open_env(build: Callable[[TrafficConfig], Any], kwargs: dict[str, Any]) -> Any:
    """`build(config)` here while this process's simulation is free, else in a worker process
    (`robustrl.envs.worker`), with the same spaces and results. Bad arguments fail here, in
    one line, before any process starts. An env nobody references any more frees the slot
    even when a reference cycle keeps it from being collected at once."""
    config = TrafficConfig.from_kwargs(kwargs)
    if _slot_taken():
        gc.collect()
    if not _slot_taken():
        return build(config)
    return spawn(partial(build, config), f"traffic-{Path(config.net_file).name}")


# ---------------------------------------------------------------------------------------------
# The simulation: sumo-rl's SumoEnvironment with a per-second hook and a list-built command line.


@functools.cache
def _sim_class() -> type:
    """A SumoEnvironment subclass, built on first use so importing this module needs no SUMO."""
    sumo_rl = load_sumo_rl()
    import traci

    class Sim(sumo_rl.SumoEnvironment):
        """sumo-rl's env, plus: every simulated second calls `on_second`; the SUMO command is
        built as a list (paths with spaces, additional files) from `_net`/`_route` (so a route
        swap before reset takes effect)."""

        on_second: Callable[[], None] | None = None
        extra_args: tuple[str, ...] = ()  # additional files and arguments, set by TrafficCore

        def _start_simulation(self) -> None:
            cmd = [self._sumo_binary, "-n", self._net, "-r", self._route,
                   "--max-depart-delay", str(self.max_depart_delay),
                   "--waiting-time-memory", str(self.waiting_time_memory),
                   "--time-to-teleport", str(self.time_to_teleport)]
            if self.begin_time > 0:
                cmd += ["-b", str(self.begin_time)]
            if self.sumo_seed == "random":
                cmd.append("--random")
            else:
                cmd += ["--seed", str(self.sumo_seed)]
            if not self.sumo_warnings:
                cmd.append("--no-warnings")
            cmd += list(self.extra_args)
            traci.start(cmd)
            self.sumo = traci

        def _sumo_step(self) -> None:
            self.sumo.simulationStep()
            if self.on_second is not None:
                self.on_second()

    return Sim


def _sumo_errors() -> tuple[type[BaseException], ...]:
    import libsumo

    return tuple(e for e in (getattr(libsumo, "TraCIException", None),
                             getattr(libsumo, "FatalTraCIError", None)) if e is not None)


def _fast_calls() -> tuple[Callable[..., Any], ...]:
    """libsumo's compiled lane-ids / acceleration / arrived-number calls, skipping the Python
    wrappers (a third of the cost of the per-second hook); the wrappers if that changes."""
    import libsumo

    raw = getattr(libsumo, "_libsumo", None)
    names = ("lane_getLastStepVehicleIDs", "vehicle_getAcceleration",
             "simulation_getArrivedNumber")
    if raw is not None and all(hasattr(raw, n) for n in names):
        return tuple(getattr(raw, n) for n in names)
    return (libsumo.lane.getLastStepVehicleIDs, libsumo.vehicle.getAcceleration,
            libsumo.simulation.getArrivedNumber)


class _Counters:
    """What happens every simulated second between two decisions: vehicles that leave each
    light's approach lanes, hard brakes on them, finished trips. Kept apart from `TrafficCore`
    so that the simulation's per-second hook holds no reference to the core: the core then dies
    with its env and frees the simulation at once."""

    def __init__(self, n_lights: int, hard_brake_decel: float):
        self.ids_of, self.accel, self.arrived_now = _fast_calls()
        self.limit = -hard_brake_decel
        self.lane_ids: list[list[str]] = []
        self.vehicles: list[set[str]] = []
        self.passed = [0] * n_lights
        self.braking = [0] * n_lights
        self.arrived = 0

    def start_episode(self, lane_ids: list[list[str]]) -> None:
        self.lane_ids = lane_ids
        self.vehicles = [set() for _ in lane_ids]
        self.new_window()
        self.arrived = 0

    def new_window(self) -> None:
        """Start a new counting window for throughput and emergency stops."""
        self.passed = [0] * len(self.passed)
        self.braking = [0] * len(self.braking)

    def on_second(self) -> None:
        # The hot loop (every simulated second): libsumo's compiled functions, no wrappers.
        ids_of, accel, limit = self.ids_of, self.accel, self.limit
        self.arrived += self.arrived_now()
        passed, braking, seen = self.passed, self.braking, self.vehicles
        for k, lanes in enumerate(self.lane_ids):
            now: set[str] = set()
            hard = 0
            for ln in lanes:
                ids = ids_of(ln)
                if ids:
                    now.update(ids)
                    for v in ids:
                        if accel(v) < limit:
                            hard += 1
            passed[k] += len(seen[k] - now)
            braking[k] += hard
            seen[k] = now


class TrafficCore:
    """One SUMO simulation and its lights: stepping, reward factors, system metrics, and what
    baseline controllers need (phase pressures). Shared by all traffic adapters. While alive
    and not closed it holds this process's libsumo slot; closing it, or dropping the last
    reference to it, frees the slot."""

    def __init__(self, config: TrafficConfig):
        load_sumo_rl()
        self.config = config
        net = resolve_file(config.net_file, "network file")
        route = resolve_file(config.route_file, "route file")
        extra_args: list[str] = []
        adds = config.additional_files
        for add in [adds] if isinstance(adds, str) else adds:
            extra_args += ["-a", resolve_file(add, "additional file")]
        cmd = config.additional_sumo_cmd
        extra_args += cmd.split() if isinstance(cmd, str) else list(cmd or ())
        self.name = Path(net).name.removesuffix(".net.xml")
        if _slot_taken():
            raise RobustRLError(BUSY)
        passed = ("num_seconds", "begin_time", "delta_time", "yellow_time", "min_green",
                  "max_green", "reward_fn", "sumo_seed", "max_depart_delay",
                  "waiting_time_memory", "time_to_teleport", "add_system_info",
                  "add_per_agent_info", "sumo_warnings", "out_csv_name")
        kwargs = {"net_file": net, "route_file": route, "single_agent": False,
                  **{name: getattr(config, name) for name in passed}}
        if config.observation_class is not None:
            kwargs["observation_class"] = config.observation_class
        try:
            self.sim = _sim_class()(**kwargs)
        except _sumo_errors() as e:
            raise RobustRLError(f"SUMO could not load network '{net}': {e}") from None
        self.sim.extra_args = tuple(extra_args)
        self.ts_ids: list[str] = list(self.sim.ts_ids)
        if not self.ts_ids:
            raise RobustRLError(f"network '{net}' has no traffic lights to control")
        if isinstance(config.reward_fn, dict) and set(config.reward_fn) != set(self.ts_ids):
            raise RobustRLError(f"traffic env: a reward_fn dict needs exactly the lights "
                                f"{self.ts_ids}, got {sorted(config.reward_fn)}")
        self.counts = _Counters(len(self.ts_ids), config.hard_brake_decel)
        self.sim.on_second = self.counts.on_second
        self.observation_spaces = {t: self.sim.observation_spaces(t) for t in self.ts_ids}
        self.action_spaces = {t: self.sim.action_spaces(t) for t in self.ts_ids}
        self._seed_rng: np.random.Generator | None = None
        self._in_lanes: list[list[tuple[str, float]]] = []
        self._green = [0] * len(self.ts_ids)
        self._movements: dict[str, list[list[tuple[str, str]]]] = {}
        global _OWNER
        _OWNER = weakref.ref(self)
        weakref.finalize(self, self.sim.close)  # dropped unclosed: stop its simulation too

    @property
    def running(self) -> bool:
        return self.sim.sumo is not None

    @property
    def signals(self) -> dict[str, Any]:
        """sumo-rl `TrafficSignal` objects by light id (rebuilt at every reset)."""
        return self.sim.traffic_signals

    @property
    def sumo(self) -> Any:
        """The running simulation's traci/libsumo handle (None when closed)."""
        return self.sim.sumo

    # -- episode ---------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start a new episode. A seed fixes this episode's SUMO seed and the stream of the
        following unseeded resets; without any seed, `sumo_seed` decides."""
        global _OWNER
        if _slot_taken(self):
            raise RobustRLError(BUSY)
        if seed is not None:
            self._seed_rng = np.random.default_rng(seed)
            self.sim.sumo_seed = int(seed)
        elif self._seed_rng is not None:
            self.sim.sumo_seed = int(self._seed_rng.integers(2**31 - 1))
        else:
            self.sim.sumo_seed = self.config.sumo_seed
        try:
            obs = self.sim.reset()
        except _sumo_errors() as e:
            raise RobustRLError(f"SUMO could not start '{self.name}': {e}") from None
        _OWNER = weakref.ref(self)
        if not self._in_lanes:  # nominal speed limits, read once: a speed perturbation shows
            lane = self.sumo.lane  # up as delay instead of moving the reference
            self._in_lanes = [[(ln, max(lane.getMaxSpeed(ln), 1e-6))
                               for ln in self.signals[t].lanes] for t in self.ts_ids]
        self.counts.start_episode([[ln for ln, _ in lanes] for lanes in self._in_lanes])
        self._green = [self.signals[t].green_phase for t in self.ts_ids]
        return obs, self.system_info()

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, bool, dict, dict]:
        """Apply one action per light (missing lights keep their phase), run `delta_time`
        seconds; return observations, rewards, truncated, system info, factors per light."""
        if not self.running:
            raise RobustRLError("traffic env: call reset() before step() (or after close())")
        full = {}
        for t in self.ts_ids:
            a = actions.get(t, self.signals[t].green_phase)
            n = self.action_spaces[t].n
            if not 0 <= int(a) < n:
                raise RobustRLError(f"traffic env: action {a!r} for light {t} is outside "
                                    f"Discrete({n})")
            full[t] = int(a)
        self.reset_counters()
        obs, rewards, dones, info = self.sim.step(full)
        info = self._finish_info(info)
        return obs, rewards, bool(dones["__all__"]), info, self.factors()

    def reset_counters(self) -> None:
        """Start a new counting window for throughput and emergency stops."""
        self.counts.new_window()

    @property
    def time(self) -> float:
        """Current simulation second."""
        return self.sim.sim_step

    @property
    def end_time(self) -> float:
        """Simulation second at which the episode is truncated."""
        return self.sim.sim_max_time

    def run_seconds(self, seconds: int) -> None:
        """Advance `seconds` simulated seconds, updating lights (yellow -> green) each second;
        for adapters that drive phases themselves (the hybrid task)."""
        signals = [self.signals[t] for t in self.ts_ids]
        for _ in range(seconds):
            self.sim._sumo_step()
            for ts in signals:
                ts.update()

    def close(self) -> None:
        self.sim.close()
        _release(self)

    # -- measurements ----------------------------------------------------------------------

    def factors(self) -> dict[str, dict[str, float]]:
        """This step's reward factors per light (see `FACTORS`)."""
        lane = self.sim.sumo.lane
        count, halting = lane.getLastStepVehicleNumber, lane.getLastStepHaltingNumber
        waiting, speed = lane.getWaitingTime, lane.getLastStepMeanSpeed
        out = {}
        for k, t in enumerate(self.ts_ids):
            queue = wait = delay = 0.0
            for ln, vmax in self._in_lanes[k]:
                n = count(ln)
                if n:
                    queue += halting(ln)
                    wait += waiting(ln)
                    delay += n * max(0.0, 1.0 - speed(ln) / vmax)
            green = self.signals[t].green_phase
            out[t] = {"queue_length": queue, "waiting_time": wait, "delay": delay,
                      "throughput": float(self.counts.passed[k]),
                      "emergency_stops": float(self.counts.braking[k]),
                      "phase_switch": float(green != self._green[k])}
            self._green[k] = green
        return out

    def system_info(self) -> dict[str, Any]:
        return self._finish_info(self.sim._compute_info())

    def _finish_info(self, info: dict[str, Any]) -> dict[str, Any]:
        info["system_arrived"] = self.counts.arrived
        return info

    # -- what controllers need -------------------------------------------------------------

    def movements(self, ts_id: str) -> list[list[tuple[str, str]]]:
        """Per green phase of `ts_id`: the (incoming lane, outgoing lane) pairs it lets go."""
        if ts_id not in self._movements:
            links = self.sumo.trafficlight.getControlledLinks(ts_id)
            per_phase = []
            for phase in self.signals[ts_id].green_phases:
                pairs = {(link[0][0], link[0][1]) for i, link in enumerate(links)
                         if link and i < len(phase.state) and phase.state[i] in "Gg"}
                per_phase.append(sorted(pairs))
            self._movements[ts_id] = per_phase
        return self._movements[ts_id]

    def phase_pressures(self, ts_id: str) -> np.ndarray:
        """Max-pressure's score per green phase: vehicles on the incoming lanes minus vehicles on
        the outgoing lanes of the movements the phase serves."""
        count = self.sumo.lane.getLastStepVehicleNumber
        cache: dict[str, int] = {}

        def n(lane: str) -> int:
            if lane not in cache:
                cache[lane] = count(lane)
            return cache[lane]

        return np.array([sum(n(i) - n(o) for i, o in pairs) for pairs in self.movements(ts_id)],
                        dtype=np.float64)
