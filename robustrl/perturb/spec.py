"""Perturbation spec strings: `kind:strength[,key=value...]`, parsed by one function.

A spec is the unit the CLI, the benchmark suites and the results database talk about, so it
has one canonical text form (`str(spec)`) that parses back to an equal spec. Parsing is pure
(no env, no torch) so that bad input fails before anything is built.

Grammar::

    spec     := kind [":" strength] ("," key "=" value)*
    value    := number | word | name ("+" name)*        (lists such as agents=agent_0+agent_2)

Every kind accepts the schedule keys `start=T` (active from lifetime step T on) and `prob=P`
(active in an episode with probability P, drawn at reset).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from robustrl.core.errors import RobustRLError

Domain = Literal["sigma", "real", "prob", "scale", "count"]

_DOMAIN_TEXT: dict[Domain, str] = {
    "sigma": "a number >= 0",
    "real": "a finite number",
    "prob": "a probability in [0, 1]",
    "scale": "a scale factor > 0",
    "count": "an integer >= 0",
}


@dataclass(frozen=True)
class Option:
    """One `key=value` a kind accepts; `type` is int, float, str, "list" or a tuple of choices."""

    type: Any
    default: Any = None
    help: str = ""
    valid: str = ""
    """The valid range beyond the type (`>= 0`), as `robustrl perturbations` lists it."""


@dataclass(frozen=True)
class KindInfo:
    """What the parser knows about a kind: its strength domain, default and options."""

    description: str
    domain: Domain
    default: float | None = None
    """Strength used when the spec omits it (`act-pra` means `act-pra:0.15`)."""
    options: Mapping[str, Option] = field(default_factory=dict)
    identity: float = 0.0
    """The strength at which the perturbation changes nothing (1 for scale factors)."""
    units: str = ""
    """What one unit of strength is (`robustrl perturbations` lists it)."""


_AGENTS = Option("list", None, "agents to perturb, joined with '+' (default: all)")
_SCHEDULE = {
    "start": Option(int, 0, "active from this lifetime step on", ">= 0"),
    "prob": Option(float, 1.0, "probability the perturbation is active in an episode", "[0, 1]"),
}
SCHEDULE_KEYS = tuple(_SCHEDULE)
"""Options every kind accepts."""

_OBS = "observation std (normalized units: strength x the agent's observation normalizer std)"
_UNITS: dict[Domain, str] = {"prob": "probability", "scale": "times the nominal value",
                             "count": "agents"}


_PGD = {
    "steps": Option(int, 10, "PGD steps K", ">= 1"),
    "restarts": Option(int, 2, "random starts R; per observation the worst one is kept", ">= 1"),
    "norm": Option(("linf", "l2"), "linf", "ball norm"),
    "objective": Option(("auto", "action", "kl", "l2"), "auto",
                        "what the attack maximizes; action: -log pi(clean greedy action) for "
                        "Discrete actions, squared L2 of the mean action for Box; kl: "
                        "KL(clean || perturbed) (Discrete only); l2: squared L2 of the output; "
                        "auto: kl for Discrete (the stronger on returns where measured), l2 for "
                        "Box"),
    "step_size": Option(float, None, "ascent step alpha (default 2.5 * eps / steps)", "> 0"),
    "agents": _AGENTS,
}
"""Options of the PGD attacks (obs-pgd, obs-transfer); every best-of iterate is scored."""


def _kind(description: str, domain: Domain, default: float | None = None,
          identity: float = 0.0, units: str = "", **options: Option) -> KindInfo:
    return KindInfo(description, domain, default, {**options, **_SCHEDULE}, identity,
                    units or _UNITS.get(domain, ""))


KINDS: dict[str, KindInfo] = {
    "obs-gaussian": _kind(
        "add N(0, sigma^2) noise to observations (sigma in normalized units)", "sigma",
        units=_OBS, agents=_AGENTS),
    "obs-uniform": _kind(
        "add U(-eps, eps) noise to observations (normalized units)", "sigma", units=_OBS,
        agents=_AGENTS),
    "obs-shift": _kind(
        "add a constant shift c to every observation dimension (normalized units)", "real",
        units=_OBS, agents=_AGENTS),
    "obs-pgd": _kind(
        "adversarial observations: PGD against the evaluated policy in an eps-ball", "sigma",
        units=_OBS, **_PGD),
    "obs-transfer": _kind(
        "transfer attack: PGD computed on a surrogate policy (surrogate=RUN_DIR, or a train "
        "label in a bench suite), applied to the evaluated one", "sigma",
        surrogate=Option(str, None, "the surrogate: a run directory, or in a bench suite the "
                                    "label of a [[train]] entry (same env and seed)"),
        units=_OBS, **_PGD),
    "act-gaussian": _kind(
        "add N(0, sigma^2) noise to Box actions (sigma relative to half the range), clipped",
        "sigma", units="half the action range", agents=_AGENTS),
    "act-pra": _kind(
        "probabilistic action robustness: with probability alpha take the adversary's action",
        "prob", 0.15,
        mode=Option(("prob", "mix"), "prob", "mix: play (1-alpha)*a + alpha*a_adv (Box only)"),
        source=Option(("random", "adversary"), "random",
                      "adversary: the `adversary` callable given to apply()"),
        agents=_AGENTS),
    "act-replace": _kind(
        "replace each action with a random one with probability p", "prob", 0.05,
        agents=_AGENTS),
    "dyn-mass": _kind(
        "scale masses (MuJoCo bodies incl. inertia; particle-world agents)", "scale",
        identity=1.0, bodies=Option("list", None, "MuJoCo body names (default: all)"),
        agents=_AGENTS),
    "dyn-friction": _kind("scale MuJoCo geom friction", "scale", identity=1.0),
    "dyn-gravity": _kind("scale MuJoCo gravity", "scale", identity=1.0),
    "dyn-gain": _kind("scale MuJoCo actuator gains (actuator strength)", "scale", identity=1.0),
    "dyn-damping": _kind(
        "scale damping (particle-world velocity damping; MuJoCo joint damping)", "scale",
        identity=1.0),
    "dyn-maxspeed": _kind("scale particle-world agents' max speed", "scale", identity=1.0,
                          agents=_AGENTS),
    "dyn-inflow": _kind(
        "traffic: scale the vehicle inflow (SUMO demand scale); route=FILE swaps the routes",
        "scale", identity=1.0, route=Option(str, None, "alternative SUMO .rou.xml file")),
    "dyn-speed": _kind("traffic: scale every lane's speed limit (vehicle speeds)", "scale",
                       identity=1.0),
    "adversary-agents": _kind(
        "k agents (default: the last k) play a random, frozen or adversary policy", "count", 1,
        policy=Option(("random", "frozen", "adversary"), "random",
                      "frozen/adversary: the `adversary` callable given to apply(); the bench "
                      "trains the adversary (robustrl.bench.adversary, k = 1)"),
        adv_steps=Option(int, 50_000, "policy=adversary in the bench: PPO env steps the "
                                      "adversary is trained for", ">= 1"),
        agents=_AGENTS),
    "reward-gaussian": _kind("add N(0, sigma^2) noise to rewards", "sigma",
                             units="reward units", agents=_AGENTS),
}


def kinds() -> dict[str, str]:
    """Every perturbation kind with a one-line description (what `robustrl` lists)."""
    return {name: info.description for name, info in KINDS.items()}


def strength_range(kind: str) -> str:
    """The valid strengths of `kind` in words (`a probability in [0, 1]`)."""
    return _DOMAIN_TEXT[_info(kind).domain]


def option_text(opt: Option) -> str:
    """An option's type and valid values in words (`integer >= 1`, `linf|l2`)."""
    if isinstance(opt.type, tuple):
        return "|".join(opt.type)
    kind = {"list": "name+name...", int: "integer", float: "number", str: "text"}
    return " ".join(filter(None, [kind.get(opt.type, str(opt.type)), opt.valid]))


def _fmt(value: Any) -> str:
    if isinstance(value, tuple):
        return "+".join(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


@dataclass(frozen=True)
class PerturbationSpec:
    """A parsed, validated perturbation: kind, strength, options and schedule.

    `options` holds every option of the kind, defaults filled in, so two spellings of the same
    perturbation compare equal; `str(spec)` writes only the non-default ones.
    """

    kind: str
    strength: float
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        info = _info(self.kind)
        object.__setattr__(self, "strength", _check_strength(self.kind, info, self.strength))
        opts = {k: o.default for k, o in info.options.items()}
        for key, value in self.options.items():
            opts[key] = _convert_option(self.kind, info, key, value)
        object.__setattr__(self, "options", opts)

    @property
    def info(self) -> KindInfo:
        return KINDS[self.kind]

    @property
    def start(self) -> int:
        return self.options["start"]

    @property
    def prob(self) -> float:
        return self.options["prob"]

    def get(self, key: str, default: Any = None) -> Any:
        """An option's value (its default when not given; `default` if the kind lacks it)."""
        return self.options.get(key, default)

    def with_strength(self, strength: float) -> PerturbationSpec:
        """The same perturbation at another strength (a point on a robustness curve)."""
        return replace(self, strength=strength)

    def __hash__(self) -> int:  # usable as a dict key / in sets (results tables, caches)
        return hash(str(self))

    def __str__(self) -> str:
        info = self.info
        extra = [f"{k}={_fmt(v)}" for k, v in self.options.items()
                 if v is not None and v != info.options[k].default]
        return ",".join([f"{self.kind}:{_fmt(self.strength)}", *extra])


def _info(kind: str) -> KindInfo:
    if kind in KINDS:
        return KINDS[kind]
    close = difflib.get_close_matches(kind, list(KINDS), n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise RobustRLError(
        f"unknown perturbation '{kind}'; {hint}valid kinds: {', '.join(KINDS)}")


def _check_strength(kind: str, info: KindInfo, value: Any) -> float:
    expected = _DOMAIN_TEXT[info.domain]
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise RobustRLError(f"{kind}: strength must be {expected}, got '{value}'") from None
    ok = math.isfinite(x) and {
        "sigma": x >= 0, "real": True, "prob": 0 <= x <= 1, "scale": x > 0,
        "count": x >= 0 and x.is_integer(),
    }[info.domain]
    if not ok:
        raise RobustRLError(f"{kind}: strength {_fmt(x)} is out of range; it must be {expected}")
    return x


def _convert_option(kind: str, info: KindInfo, key: str, value: Any) -> Any:
    if key not in info.options:
        close = difflib.get_close_matches(key, list(info.options), n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise RobustRLError(
            f"{kind} has no option '{key}'; {hint}valid: {', '.join(info.options)}")
    opt = info.options[key]
    if value is None:
        return None
    if opt.type == "list":
        items = tuple(value.split("+")) if isinstance(value, str) else tuple(map(str, value))
        if not items or not all(items):
            raise RobustRLError(f"{kind}: {key} must be names joined with '+', got '{value}'")
        return items
    if isinstance(opt.type, tuple):
        if value not in opt.type:
            raise RobustRLError(f"{kind}: {key} must be one of {', '.join(opt.type)}, "
                                f"got '{value}'")
        return value
    if opt.type is str:
        return str(value)
    try:
        x = float(value)
        if opt.type is int and not x.is_integer():
            raise ValueError
        x = int(x) if opt.type is int else x
    except (TypeError, ValueError):
        raise RobustRLError(
            f"{kind}: {key} must be {'an integer' if opt.type is int else 'a number'}, "
            f"got '{value}'") from None
    if key == "prob" and not 0 <= x <= 1:
        raise RobustRLError(f"{kind}: prob={_fmt(x)} must be a probability in [0, 1]")
    if key in ("start", "steps", "restarts", "adv_steps") and x < (0 if key == "start" else 1):
        raise RobustRLError(f"{kind}: {key}={x} must be >= {0 if key == 'start' else 1}")
    if key == "step_size" and not x > 0:
        raise RobustRLError(f"{kind}: step_size={_fmt(x)} must be > 0")
    return x


def parse(spec: str | PerturbationSpec) -> PerturbationSpec:
    """Parse `kind:strength[,key=value...]` into a validated `PerturbationSpec`.

    Every error is one `RobustRLError` line naming the valid kinds, range or keys.
    """
    if isinstance(spec, PerturbationSpec):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise RobustRLError(f"empty perturbation spec {spec!r}; write kind:strength, "
                            "e.g. obs-gaussian:0.1")
    head, *rest = [part.strip() for part in spec.strip().split(",")]
    kind, sep, strength = (s.strip() for s in head.partition(":"))
    info = _info(kind)
    if not sep or not strength:
        if info.default is None:
            example = {"scale": "1.5", "count": "1"}.get(info.domain, "0.1")
            raise RobustRLError(f"{kind} needs a strength ({_DOMAIN_TEXT[info.domain]}), "
                                f"e.g. {kind}:{example}")
        strength = info.default
    options: dict[str, str] = {}
    for part in rest:
        key, eq, value = (s.strip() for s in part.partition("="))
        if not eq or not key or not value:
            raise RobustRLError(f"malformed option '{part}' in '{spec}'; write key=value")
        if key in options:
            raise RobustRLError(f"option '{key}' given twice in '{spec}'")
        options[key] = value
    return PerturbationSpec(kind, strength, options)
