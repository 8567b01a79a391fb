"""SUMO for the traffic envs: the import (SUMO_HOME from the wheel, traci on libsumo, one line
when something is missing), file lookup in sumo-rl's bundled networks, and `TrafficConfig`, the
single list of keyword arguments `make("traffic/...")` and `make("hybrid/traffic-...")` accept.
Importing this module needs no SUMO; `load_sumo_rl()` does.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustrl.core.errors import MissingExtraError, RobustRLError

INSTALL = "pip install 'robustrl[traffic]' (eclipse-sumo, libsumo, sumo-rl)"


# ---------------------------------------------------------------------------------------------
# SUMO import: SUMO_HOME from the wheel, libsumo as traci, one clear line when missing.


@functools.cache
def load_sumo_rl() -> Any:
    """Import sumo-rl on libsumo, setting SUMO_HOME from the eclipse-sumo wheel first."""
    try:
        import sumo
    except ImportError:
        raise MissingExtraError(f"traffic envs need SUMO, which is not installed; {INSTALL}") \
            from None
    if not os.path.isdir(os.environ.get("SUMO_HOME", "")):
        os.environ["SUMO_HOME"] = sumo.SUMO_HOME
    os.environ.setdefault("LIBSUMO_AS_TRACI", "quiet")  # set before traci is first imported
    # find_spec, not import: importing libsumo before traci leaves traci half-initialized.
    if importlib.util.find_spec("libsumo") is None:
        raise MissingExtraError(f"traffic envs need libsumo, which is not installed; {INSTALL}")
    try:
        import traci

        with warnings.catch_warnings():  # sumo-rl imports a deprecated PettingZoo module
            warnings.simplefilter("ignore", DeprecationWarning)
            import sumo_rl
    except ImportError as e:
        raise MissingExtraError(
            f"traffic envs need '{e.name}', which is not installed; {INSTALL}") from None
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
    demand_vph: float | None = None
    """Generated demand instead of route_file: this many vehicles per hour on every approach
    (edge entering from a dead end), driving straight through to the opposite exit, arrivals
    drawn by SUMO from its seed (robustrl.envs.traffic_demand); 700 is ERNIE's saturated setting."""
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
        if config.demand_vph is not None:
            from robustrl.envs.traffic_demand import demand_route_file

            config.route_file = demand_route_file(resolve_file(config.net_file, "network file"),
                                                  float(config.demand_vph))
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
        need(self.demand_vph is None or (isinstance(self.demand_vph, (int, float))
                                         and not isinstance(self.demand_vph, bool)
                                         and self.demand_vph > 0),
             f"demand_vph must be a number > 0 (vehicles per hour per approach) or None, got "
             f"{self.demand_vph!r}")
        need(self.render_mode is None, "render_mode must be None (libsumo runs without a GUI)")
        need(isinstance(self.hard_brake_decel, (int, float)) and self.hard_brake_decel > 0,
             f"hard_brake_decel must be a number > 0 (m/s^2), got {self.hard_brake_decel!r}")
        fns = [self.reward_fn] if not isinstance(self.reward_fn, dict) else list(
            self.reward_fn.values())
        known = list(load_sumo_rl().TrafficSignal.reward_fns)
        for fn in fns:
            need(callable(fn) or fn in known,
                 f"unknown reward_fn {fn!r}; use one of {known} or a callable")
