"""One registry for every environment id, filled from the TOML specs in `envs/`.

An id is `family/name` (`mujoco/Hopper-v5`, `traffic/2x2grid`). Each family's TOML file names
an entry point (`module:function`, imported only when an env of that family is made, so that
`robustrl envs` needs no SUMO), the per-id keyword arguments, and the reward factors with their
direction and default importance ranking. Users add their own ids with `register`.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import tomllib
from collections.abc import Callable
from functools import partial
from typing import Any

import gymnasium as gym

from robustrl.core.errors import MissingExtraError, RobustRLError
from robustrl.core.paths import spec_dir
from robustrl.envs.check import CheckResult
from robustrl.envs.check import check as check_problems
from robustrl.envs.factors import attach_factors
from robustrl.envs.specs import EnvSpec, Factor, Kind, mark
from robustrl.envs.worker import SubprocessEnv, SubprocessParallelEnv, spawn

_REGISTRY: dict[str, EnvSpec] = {}
# Families whose ids are not enumerated: any name after the prefix is passed to the factory.
_OPEN_FAMILIES: dict[str, Callable[[str], EnvSpec | None]] = {}
_LOADED = False
_BUILTIN: set[str] = set()
"""Ids from the TOML specs: a user's register() may not replace them."""


def _factor_table(table: dict[str, Any], where: str) -> tuple[Factor, ...]:
    factors = []
    for name, fields in table.items():
        unknown = set(fields) - {"direction", "description", "source", "scale"}
        if unknown:
            raise RobustRLError(f"{where}: factor '{name}' has unknown keys {sorted(unknown)}")
        if fields.get("direction", "higher") not in ("higher", "lower"):
            raise RobustRLError(f"{where}: factor '{name}' direction must be 'higher' or 'lower'")
        factors.append(Factor(name=name, **fields))
    return tuple(factors)


def _load_family(path) -> None:
    with open(path, "rb") as f:
        data = tomllib.load(f)
    family = data.get("family", {})
    name = family.get("name", path.stem)
    family_factors = _factor_table(data.get("factors", {}), path.name)
    for env_name, entry in data.get("envs", {}).items():
        factors = (_factor_table(entry["factors"], path.name) if "factors" in entry
                   else family_factors)
        ranking = tuple(entry.get("ranking", family.get("ranking", [f.name for f in factors])))
        unknown = set(ranking) - {f.name for f in factors}
        if unknown:
            raise RobustRLError(f"{path.name}: {env_name} ranks unknown factors {sorted(unknown)}")
        env_id = f"{name}/{env_name}"
        _BUILTIN.add(env_id)
        _REGISTRY[env_id] = EnvSpec(
            id=env_id,
            entry_point=entry.get("entry_point", family.get("entry_point")),
            kwargs=dict(entry.get("kwargs", {})),
            kind=entry.get("kind", family.get("kind")),
            factors=factors,
            ranking=ranking,
            description=entry.get("description", family.get("description", "")),
            observation_space=entry.get("observation_space", ""),
            action_space=entry.get("action_space", ""),
            extra=family.get("extra", ""),
        )


def _ensure_loaded() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for path in sorted(spec_dir("envs").glob("*.toml")):
        _load_family(path)
    _OPEN_FAMILIES["gym"] = _gym_spec


def _gym_spec(name: str) -> EnvSpec | None:
    """`gym/<id>`: any id in Gymnasium's own registry (classic control, a user's gym.register)."""
    if name not in gym.registry:
        return None
    return EnvSpec(
        id=f"gym/{name}",
        entry_point="robustrl.envs.factors:make_gymnasium",
        kwargs={"gym_id": name},
        kind="single",
        factors=(Factor("env_reward", "higher", "the environment's own reward"),),
        ranking=("env_reward",),
        description="Gymnasium registry id",
    )


def register(
    env_id: str,
    entry_point: str | Callable[..., Any],
    *,
    factors: dict[str, str] | None = None,
    ranking: list[str] | None = None,
    kind: Kind | None = None,
    description: str = "",
    replace: bool = False,
    check: bool = True,
    **defaults: Any,
) -> EnvSpec:
    """Register a user's Gymnasium env or PettingZoo ParallelEnv under `env_id`.

    `entry_point` is a callable (or "module:attr") returning the env; `defaults` are keyword
    arguments passed to it. `factors` maps factor name -> "higher"/"lower"; the env reports
    their values in `info["reward_factors"]` (if it reports none, the env reward is the single
    factor `env_reward`). Registering an id again with the same entry point and settings (a
    module imported twice) is a no-op; another entry point needs `replace=True`; a built-in id
    cannot be replaced. `check` (default on) makes the env and runs `check(env_id)` on it: a
    problem stops here, one line each, and the id stays unregistered.
    """
    _ensure_loaded()
    if "/" not in env_id:
        raise RobustRLError(f"env id '{env_id}' needs a family prefix, e.g. 'custom/{env_id}'")
    for name, direction in (factors or {}).items():
        if direction not in ("higher", "lower"):
            raise RobustRLError(f"{env_id}: factor '{name}' direction must be 'higher' or "
                                f"'lower', got {direction!r}")
    factor_specs = tuple(Factor(n, d) for n, d in (factors or {"env_reward": "higher"}).items())
    unknown = set(ranking or ()) - {f.name for f in factor_specs}
    if unknown:
        raise RobustRLError(f"{env_id}: ranking names unknown factors {sorted(unknown)}; "
                            f"factors: {[f.name for f in factor_specs]}")
    spec = EnvSpec(
        id=env_id,
        entry_point=entry_point,
        kwargs=dict(defaults),
        kind=kind,
        factors=factor_specs,
        ranking=tuple(ranking or [f.name for f in factor_specs]),
        description=description or "user-registered",
    )
    previous = _REGISTRY.get(env_id)
    if previous is not None and previous != spec:
        if env_id in _BUILTIN:
            raise RobustRLError(f"env id '{env_id}' is built in; register yours under another "
                                "family, e.g. 'custom/...'")
        if not replace:
            raise RobustRLError(f"env id '{env_id}' is already registered with another entry "
                                "point or settings; pick another id or pass replace=True")
    _REGISTRY[env_id] = spec
    problems = check_id(env_id).problems if check else []
    if problems:
        if previous is None:
            del _REGISTRY[env_id]
        else:
            _REGISTRY[env_id] = previous
        raise RobustRLError(f"{env_id} fails its check (register(..., check=False) skips it): "
                            + "; ".join(problems))
    return spec


def check_id(env_id: str, **kwargs: Any) -> CheckResult:
    """Problems and notes of the env `make(env_id, **kwargs)` builds, one line each:
    Gymnasium's env checker or PettingZoo's parallel API test, then robustrl's checks of the
    observations, rewards and declared reward factors (`robustrl.envs.check`)."""
    return check_problems(partial(make, env_id, **kwargs), spec(env_id))


def list_envs(family: str | None = None) -> list[str]:
    """All registered ids (open families like `gym/` accept more than are listed)."""
    _ensure_loaded()
    families = sorted({i.split("/", 1)[0] for i in _REGISTRY} | set(_OPEN_FAMILIES))
    if family is not None and family not in families:
        close = difflib.get_close_matches(family, families, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise RobustRLError(f"unknown env family '{family}'; {hint}families: "
                            f"{', '.join(families)}")
    return sorted(i for i in _REGISTRY if family is None or i.split("/", 1)[0] == family)


def spec(env_id: str) -> EnvSpec:
    """The `EnvSpec` of `env_id`, or a one-line error suggesting close matches."""
    _ensure_loaded()
    if env_id in _REGISTRY:
        return _REGISTRY[env_id]
    family, _, name = env_id.partition("/")
    if family in _OPEN_FAMILIES:
        found = _OPEN_FAMILIES[family](name)
        if found is not None:
            return found
    close = difflib.get_close_matches(env_id, list(_REGISTRY), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    raise RobustRLError(f"unknown env id '{env_id}'; {hint}(`robustrl envs` lists all ids)")


def _resolve(entry_point: str | Callable[..., Any], env_spec: EnvSpec) -> Callable[..., Any]:
    if callable(entry_point):
        return entry_point
    module_name, _, attr = entry_point.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        install = f"pip install '{env_spec.extra}'" if env_spec.extra else "install it"
        raise MissingExtraError(
            f"{env_spec.id} needs the missing package '{e.name}'; {install}") from None
    return getattr(module, attr)


def _check_kwargs(fn: Callable[..., Any], kwargs: dict[str, Any], env_id: str) -> None:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        valid = ", ".join(n for n, p in params.items() if p.kind is not p.VAR_POSITIONAL)
        raise RobustRLError(f"{env_id}: invalid argument(s) {unknown}; valid: {valid}")


def make(env_id: str, **kwargs: Any):
    """Make the env registered as `env_id`; `kwargs` override the spec's defaults.

    Returns a Gymnasium `Env` (single-agent ids) or a PettingZoo `ParallelEnv` (multi-agent
    ids) whose step info carries `reward_factors`, and which carries its id and `kwargs`
    (`robustrl.envs.identity`) so that an agent handed the env can make more like it. A
    traffic id runs in a worker process when this process's simulation is taken (see
    `robustrl.envs.traffic`).
    """
    env_spec = spec(env_id)
    fn = _resolve(env_spec.entry_point, env_spec)
    merged = {**env_spec.kwargs, **kwargs}
    _check_kwargs(fn, merged, env_id)
    try:
        env = fn(**merged)
    except TypeError as e:
        if "argument" in str(e):
            raise RobustRLError(f"{env_id}: invalid arguments {sorted(kwargs)}: {e}") from None
        raise
    return mark(attach_factors(env, env_spec), env_id, kwargs)


def make_subprocess(env_id: str, *, context: str = "spawn",
                    **kwargs: Any) -> SubprocessEnv | SubprocessParallelEnv:
    """`make(env_id, **kwargs)` in a child process, behind a proxy with the same API (and the
    same identity); for running envs side by side, e.g. to step them concurrently."""
    spec(env_id)  # an unknown id fails here, not in the child
    return mark(spawn(partial(make, env_id, **kwargs), env_id, context), env_id, kwargs)


def make_vec(env_id: str, num_envs: int, *, context: str = "spawn",
             **kwargs: Any) -> gym.vector.AsyncVectorEnv:
    """`num_envs` copies of a single-agent id, each in its own process: gymnasium's
    AsyncVectorEnv is enough for that, given the 'spawn' start method (a forked child would
    inherit the parent's libsumo state)."""
    if num_envs < 1:
        raise RobustRLError(f"num_envs must be >= 1, got {num_envs}")
    single_agent = kwargs.get("single_agent")
    if (spec(env_id).kind == "multi" and not single_agent) or single_agent is False:
        raise RobustRLError(f"make_vec needs a single-agent env and {env_id} is multi-agent; "
                            "use make_subprocess once per env (or single_agent=True)")
    fns = [partial(make, env_id, **kwargs) for _ in range(num_envs)]
    return gym.vector.AsyncVectorEnv(fns, context=context)
