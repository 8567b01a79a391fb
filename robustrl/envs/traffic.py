"""Traffic-signal control on SUMO through sumo-rl: Gymnasium and PettingZoo adapters.

`make("traffic/<network>")` builds a sumo-rl `SumoEnvironment` on libsumo (SUMO in-process,
about 8x faster than TraCI sockets) and wraps it:

- one traffic light, or `single_agent=True`: `TrafficSignalEnv` (Gymnasium); with several lights
  it is one central controller (MultiDiscrete action, concatenated observations, summed reward);
- several lights, or `single_agent=False`: `TrafficParallelEnv` (PettingZoo ParallelEnv, one agent
  per light). sumo-rl 1.4.5's own `parallel_env` is broken on PettingZoo >= 1.25.

Every step reports `info["reward_factors"]` per light (see `FACTORS`), and the system metrics of
sumo-rl (`system_mean_waiting_time`, ...) plus `system_arrived` (vehicles that finished their trip
this episode). SUMO_HOME is taken from the `eclipse-sumo` wheel; users never set it.

libsumo runs one simulation per process: a second traffic env in the same process raises a
one-line error while the first one is running. Run concurrent envs in subprocess workers
(`robustrl.envs.traffic_worker.make_subprocess` / `make_vec`). Your own network:
`register("mine/net", "robustrl.envs.traffic:make_traffic", net_file=..., route_file=...)`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
import os
import sys
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from robustrl.core.errors import RobustRLError

INSTALL = "pip install eclipse-sumo libsumo sumo-rl"

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
# SUMO import: SUMO_HOME from the wheel, libsumo as traci, one clear line when missing.


@functools.cache
def load_sumo_rl() -> Any:
    """Import sumo-rl on libsumo, setting SUMO_HOME from the eclipse-sumo wheel first."""
    try:
        import sumo
    except ImportError:
        raise RobustRLError(f"traffic envs need SUMO, which is not installed; {INSTALL}") from None
    if not os.path.isdir(os.environ.get("SUMO_HOME", "")):
        os.environ["SUMO_HOME"] = sumo.SUMO_HOME
    os.environ.setdefault("LIBSUMO_AS_TRACI", "quiet")  # set before traci is first imported
    # find_spec, not import: importing libsumo before traci leaves traci half-initialized.
    if importlib.util.find_spec("libsumo") is None:
        raise RobustRLError(f"traffic envs need libsumo, which is not installed; {INSTALL}")
    try:
        import traci

        with warnings.catch_warnings():  # sumo-rl imports a deprecated PettingZoo module
            warnings.simplefilter("ignore", DeprecationWarning)
            import sumo_rl
    except ImportError as e:
        raise RobustRLError(f"traffic envs need '{e.name}', which is not installed; {INSTALL}") \
            from None
    if not _is_libsumo(traci):
        traci = _reimport_traci_on_libsumo()
    return sumo_rl


def _is_libsumo(traci: Any) -> bool:
    return bool(getattr(traci, "isLibsumo", lambda: False)())


def _reimport_traci_on_libsumo() -> Any:
    """traci was imported earlier on sockets (LIBSUMO_AS_TRACI unset then, or `import libsumo`
    ran first and left traci half-initialized): import it again on libsumo and point sumo-rl
    at it, so the import order of a user's program does not matter."""
    for name in [m for m in sys.modules if m == "traci" or m.startswith("traci.")]:
        del sys.modules[name]
    import traci

    if not _is_libsumo(traci):
        raise RobustRLError("could not switch traci to libsumo; set LIBSUMO_AS_TRACI=1 in the "
                            "environment before starting Python")
    for name in ("sumo_rl.environment.env", "sumo_rl.environment.traffic_signal"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "traci"):
            module.traci = traci
    env_module = sys.modules.get("sumo_rl.environment.env")
    if env_module is not None:
        env_module.LIBSUMO = True
    return traci


def nets_dir() -> Path:
    """sumo-rl's bundled networks (`single-intersection/`, `2x2grid/`, `RESCO/...`)."""
    return Path(load_sumo_rl().__file__).parent / "nets"


def resolve_file(path: str, what: str) -> str:
    """An existing file: `path` itself, else `path` under sumo-rl's bundled `nets/` folder."""
    if not path:
        raise RobustRLError(f"traffic env needs a {what}")
    candidates = [Path(path).expanduser()]
    if not candidates[0].is_absolute():
        candidates.append(nets_dir() / path)
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate.resolve())
    raise RobustRLError(f"{what} '{path}' not found (looked at {path} and in sumo-rl's nets/)")


# ---------------------------------------------------------------------------------------------
# Configuration: one dataclass, the single list of valid keyword arguments.


@dataclass
class TrafficConfig:
    """Keyword arguments of `make("traffic/...")`; most are sumo-rl's own."""

    net_file: str = ""
    """SUMO network (.net.xml): a path, or a path relative to sumo-rl's bundled `nets/`."""
    route_file: str = ""
    """Demand (.rou.xml), resolved like net_file; swap it to change inflows."""
    single_agent: bool | None = None
    """None: Gymnasium env for one light, ParallelEnv for several. True: Gymnasium env (several
    lights: one central controller). False: ParallelEnv (one agent per light)."""
    num_seconds: int = 3600
    """Simulated seconds per episode."""
    begin_time: int = 0
    """Simulation second the episode starts at (RESCO scenarios start in the morning/evening)."""
    delta_time: int = 5
    """Simulated seconds between two decisions."""
    yellow_time: int = 2
    """Seconds of yellow before a new green phase."""
    min_green: int = 5
    """A light keeps a green at least this long (sumo-rl ignores earlier switch requests)."""
    max_green: int = 50
    """Upper bound of a green (sumo-rl ignores it; the hybrid task uses it as duration bound)."""
    reward_fn: Any = "diff-waiting-time"
    """sumo-rl reward: 'diff-waiting-time', 'average-speed', 'queue', 'pressure', a callable
    f(traffic_signal) -> float, or a dict {light id: one of those}."""
    observation_class: Any = None
    """A sumo-rl `ObservationFunction` subclass; None: sumo-rl's default (phase one-hot, min-green
    flag, lane densities, lane queues)."""
    sumo_seed: int | str = "random"
    """SUMO seed when reset() gets none and was never seeded: an int, or 'random'."""
    additional_files: Sequence[str] = ()
    """Extra SUMO additional files (.add.xml), resolved like net_file."""
    additional_sumo_cmd: str | Sequence[str] | None = None
    """Extra SUMO command-line arguments."""
    max_depart_delay: int = -1
    """Drop vehicles not inserted after this many seconds (-1: never)."""
    waiting_time_memory: int = 1000
    """Seconds SUMO remembers a vehicle's accumulated waiting time."""
    time_to_teleport: int = -1
    """Teleport vehicles stuck this long (-1: never)."""
    hard_brake_decel: float = 4.0
    """Deceleration (m/s^2) counted as an emergency stop; SUMO cars brake at 4.5 at most unless
    forced to."""
    add_system_info: bool = True
    """Put sumo-rl's system metrics (mean waiting time, speed, stopped) in info."""
    add_per_agent_info: bool = False
    """Put sumo-rl's per-light metrics in info (slower; reward_factors already carry them)."""
    sumo_warnings: bool = False
    """Print SUMO's warnings."""
    out_csv_name: str | None = None
    """sumo-rl's per-episode metrics CSV prefix; None: none written."""
    render_mode: str | None = None
    """Must be None: libsumo has no GUI."""

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> TrafficConfig:
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in kwargs if k not in names]
        if unknown:
            close = difflib.get_close_matches(unknown[0], names, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise RobustRLError(f"traffic env: invalid argument(s) {unknown}; {hint}"
                                f"valid: {', '.join(names)}")
        config = cls(**kwargs)
        config.validate()
        return config

    def validate(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise RobustRLError(f"traffic env: {msg}")

        for name in ("num_seconds", "delta_time", "yellow_time", "min_green", "max_green"):
            need(isinstance(getattr(self, name), int) and not isinstance(getattr(self, name), bool),
                 f"{name} must be an integer number of seconds, got {getattr(self, name)!r}")
        need(self.num_seconds > 0, "num_seconds must be > 0")
        need(self.delta_time > self.yellow_time >= 1,
             f"need delta_time ({self.delta_time}) > yellow_time ({self.yellow_time}) >= 1")
        need(0 < self.min_green <= self.max_green,
             f"need 0 < min_green ({self.min_green}) <= max_green ({self.max_green})")
        need(self.single_agent in (None, True, False), "single_agent must be true, false or None")
        need(self.sumo_seed == "random" or (isinstance(self.sumo_seed, int)
                                            and not isinstance(self.sumo_seed, bool)),
             f"sumo_seed must be an integer or 'random', got {self.sumo_seed!r}")
        need(self.render_mode is None, "render_mode must be None (libsumo runs without a GUI)")
        need(isinstance(self.hard_brake_decel, (int, float)) and self.hard_brake_decel > 0,
             f"hard_brake_decel must be a number > 0 (m/s^2), got {self.hard_brake_decel!r}")
        fns = [self.reward_fn] if not isinstance(self.reward_fn, dict) else list(
            self.reward_fn.values())
        known = list(load_sumo_rl().TrafficSignal.reward_fns)
        for fn in fns:
            need(callable(fn) or fn in known,
                 f"unknown reward_fn {fn!r}; use one of {known} or a callable")


# ---------------------------------------------------------------------------------------------
# The simulation: sumo-rl's SumoEnvironment with a per-second hook and a list-built command line.

_RUNNING: weakref.ref | None = None  # the TrafficCore whose simulation libsumo is running


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


class TrafficCore:
    """One SUMO simulation and its lights: stepping, reward factors, system metrics, and what
    baseline controllers need (phase pressures). Shared by all traffic adapters."""

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
        self._check_free()
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
        self.sim.on_second = self._on_second
        self.ts_ids: list[str] = list(self.sim.ts_ids)
        if not self.ts_ids:
            raise RobustRLError(f"network '{net}' has no traffic lights to control")
        if isinstance(config.reward_fn, dict) and set(config.reward_fn) != set(self.ts_ids):
            raise RobustRLError(f"traffic env: a reward_fn dict needs exactly the lights "
                                f"{self.ts_ids}, got {sorted(config.reward_fn)}")
        self.observation_spaces = {t: self.sim.observation_spaces(t) for t in self.ts_ids}
        self.action_spaces = {t: self.sim.action_spaces(t) for t in self.ts_ids}
        self._seed_rng: np.random.Generator | None = None
        self._in_lanes: list[list[tuple[str, float]]] = []
        self._lane_ids: list[list[str]] = []
        self._vehicles: list[set[str]] = []
        self._passed = [0] * len(self.ts_ids)
        self._braking = [0] * len(self.ts_ids)
        self._green = [0] * len(self.ts_ids)
        self._movements: dict[str, list[list[tuple[str, str]]]] = {}
        self.arrived = 0
        self._fast_ids, self._fast_accel, self._fast_arrived = _fast_calls()

    # -- one simulation per process -------------------------------------------------------

    def _check_free(self) -> None:
        owner = _RUNNING() if _RUNNING is not None else None
        import traci

        if (owner is not None and owner is not self and owner.running) or (
                owner is None and traci.isLoaded()):
            raise RobustRLError(
                "libsumo runs one simulation per process and another traffic env is running; "
                "close it first, or run this one in a subprocess "
                "(robustrl.envs.traffic_worker.make_subprocess / make_vec)")

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
        global _RUNNING
        self._check_free()
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
        _RUNNING = weakref.ref(self)
        if not self._in_lanes:  # nominal speed limits, read once: a speed perturbation shows
            lane = self.sumo.lane  # up as delay instead of moving the reference
            self._in_lanes = [[(ln, max(lane.getMaxSpeed(ln), 1e-6))
                               for ln in self.signals[t].lanes] for t in self.ts_ids]
        self._lane_ids = [[ln for ln, _ in lanes] for lanes in self._in_lanes]
        self._vehicles = [set() for _ in self.ts_ids]
        self._green = [self.signals[t].green_phase for t in self.ts_ids]
        self.reset_counters()
        self.arrived = 0
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
        self._passed = [0] * len(self.ts_ids)
        self._braking = [0] * len(self.ts_ids)

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
        global _RUNNING
        self.sim.close()
        if _RUNNING is not None and _RUNNING() is self:
            _RUNNING = None

    # -- measurements ----------------------------------------------------------------------

    def _on_second(self) -> None:
        # The hot loop (every simulated second): libsumo's compiled functions, no wrappers.
        ids_of, accel, limit = self._fast_ids, self._fast_accel, -self.config.hard_brake_decel
        self.arrived += self._fast_arrived()
        passed, braking, seen = self._passed, self._braking, self._vehicles
        for k, lanes in enumerate(self._lane_ids):
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
                      "throughput": float(self._passed[k]),
                      "emergency_stops": float(self._braking[k]),
                      "phase_switch": float(green != self._green[k])}
            self._green[k] = green
        return out

    def system_info(self) -> dict[str, Any]:
        return self._finish_info(self.sim._compute_info())

    def _finish_info(self, info: dict[str, Any]) -> dict[str, Any]:
        info["system_arrived"] = self.arrived
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


# ---------------------------------------------------------------------------------------------
# Adapters


def _concat_box(boxes: list[spaces.Box]) -> spaces.Box:
    return spaces.Box(np.concatenate([b.low.ravel() for b in boxes]),
                      np.concatenate([b.high.ravel() for b in boxes]), dtype=boxes[0].dtype)


def _sum_factors(per_light: dict[str, dict[str, float]]) -> dict[str, float]:
    total = dict.fromkeys(FACTORS, 0.0)
    for factors in per_light.values():
        for key, value in factors.items():
            total[key] += value
    return total


class TrafficSignalEnv(gym.Env):
    """Gymnasium env: one light (Discrete action), or all lights under one central controller
    (MultiDiscrete action, concatenated observation, summed reward and factors)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, core: TrafficCore | None = None, **kwargs: Any):
        self.core = core or TrafficCore(TrafficConfig.from_kwargs(kwargs))
        self.config = self.core.config
        self.sim = self.core.sim  # reachable for perturbations (they look for a SumoEnvironment)
        self.ts_ids = self.core.ts_ids
        self.central = len(self.ts_ids) > 1
        if self.central:
            self.observation_space = _concat_box([self.core.observation_spaces[t]
                                                  for t in self.ts_ids])
            self.action_space = spaces.MultiDiscrete([self.core.action_spaces[t].n
                                                      for t in self.ts_ids])
        else:
            self.observation_space = self.core.observation_spaces[self.ts_ids[0]]
            self.action_space = self.core.action_spaces[self.ts_ids[0]]

    def _obs(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        if self.central:
            return np.concatenate([obs[t] for t in self.ts_ids])
        return obs[self.ts_ids[0]]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        obs, info = self.core.reset(seed)
        return self._obs(obs), info

    def step(self, action: Any):
        if self.central:
            flat = np.asarray(action).ravel()
            if flat.size != len(self.ts_ids):
                raise RobustRLError(f"traffic env: expected one phase per light "
                                    f"({len(self.ts_ids)}), got {flat.size}")
            actions = dict(zip(self.ts_ids, flat, strict=True))
        else:
            actions = {self.ts_ids[0]: action}
        obs, rewards, truncated, info, factors = self.core.step(actions)
        if self.central:
            reward = float(sum(rewards[t] for t in self.ts_ids))
            info["reward_factors"] = _sum_factors(factors)
            info["signal_factors"] = factors
        else:
            reward = float(rewards[self.ts_ids[0]])
            info["reward_factors"] = factors[self.ts_ids[0]]
        return self._obs(obs), reward, False, truncated, info

    def close(self) -> None:
        self.core.close()


class TrafficParallelEnv(ParallelEnv):
    """PettingZoo ParallelEnv: one agent per traffic light, acting every `delta_time` seconds.
    Each agent's info holds its own `reward_factors` and the shared system metrics."""

    metadata: ClassVar[dict[str, Any]] = {"name": "robustrl_traffic", "render_modes": [],
                                          "is_parallelizable": True}

    def __init__(self, core: TrafficCore | None = None, **kwargs: Any):
        self.core = core or TrafficCore(TrafficConfig.from_kwargs(kwargs))
        self.config = self.core.config
        self.sim = self.core.sim  # reachable for perturbations (they look for a SumoEnvironment)
        self.possible_agents = list(self.core.ts_ids)
        self.agents: list[str] = []
        self.observation_spaces = dict(self.core.observation_spaces)
        self.action_spaces = dict(self.core.action_spaces)
        self.render_mode = None

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.core.reset(seed)
        self.agents = list(self.possible_agents)
        return obs, {a: dict(info) for a in self.agents}

    def step(self, actions: dict[str, Any]):
        obs, rewards, truncated, info, factors = self.core.step(actions)
        agents = self.agents
        infos = {a: {**info, "reward_factors": factors[a]} for a in agents}
        rewards = {a: float(rewards[a]) for a in agents}
        obs = {a: obs[a] for a in agents}
        terminations = dict.fromkeys(agents, False)
        truncations = dict.fromkeys(agents, truncated)
        if truncated:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def state(self) -> np.ndarray:
        return np.concatenate([self.core.sim.observations[a] for a in self.possible_agents])

    def render(self) -> None:
        return None

    def close(self) -> None:
        self.core.close()


def make_traffic(**kwargs: Any) -> TrafficSignalEnv | TrafficParallelEnv:
    """Entry point of the `traffic/` family: the keyword arguments are `TrafficConfig`'s."""
    core = TrafficCore(TrafficConfig.from_kwargs(kwargs))
    single = core.config.single_agent
    if single is None:
        single = len(core.ts_ids) == 1
    return TrafficSignalEnv(core) if single else TrafficParallelEnv(core)


# ---------------------------------------------------------------------------------------------
# Neighbour graph of the lights (mean-field learners condition on their neighbours' actions).


@functools.cache
def _light_graph(net_file: str) -> dict[str, frozenset[str]]:
    """{light: lights sharing a (non-internal) edge with it} of a SUMO network, both ways."""
    load_sumo_rl()  # SUMO_HOME first
    try:
        import sumolib
    except ImportError:
        raise RobustRLError(f"the traffic neighbour graph needs sumolib; {INSTALL}") from None
    net = sumolib.net.readNet(net_file)
    node_light: dict[str, str] = {}
    for tls in net.getTrafficLights():
        for connection in tls.getConnections():  # (incoming lane, outgoing lane, link index)
            node_light[connection[0].getEdge().getToNode().getID()] = tls.getID()
    graph: dict[str, set[str]] = {tls.getID(): set() for tls in net.getTrafficLights()}
    for edge in net.getEdges():
        a = node_light.get(edge.getFromNode().getID())
        b = node_light.get(edge.getToNode().getID())
        if a is not None and b is not None and a != b:
            graph[a].add(b)
            graph[b].add(a)
    return {light: frozenset(others) for light, others in graph.items()}


def neighbours(env: Any) -> dict[str, list[str]]:
    """{light id: its neighbouring light ids} of a traffic env (through wrappers), in the env's
    light order. Two lights are neighbours when an edge of the network runs directly between
    junctions they control (a light's junctions: the nodes its controlled links enter); lights
    linked only through unsignalized junctions are not. Read from the net file with sumolib,
    so the simulation need not be running; an env in a subprocess proxy is refused."""
    core = getattr(getattr(env, "unwrapped", env), "core", None)
    if not isinstance(core, TrafficCore):
        raise RobustRLError("neighbours() needs a traffic env made by robustrl.envs.make("
                            "'traffic/...') in this process (not a subprocess proxy)")
    graph = _light_graph(resolve_file(core.config.net_file, "network file"))
    return {t: [u for u in core.ts_ids if u != t and u in graph.get(t, ())]
            for t in core.ts_ids}
