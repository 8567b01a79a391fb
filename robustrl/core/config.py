"""Typed configuration: dataclasses are the schema, TOML and `--set key=value` fill them.

Every value is checked against the field's type annotation and its range; an unknown key, a
value of the wrong type or one out of range raises `RobustRLError` naming the key and the valid
choices, so the CLI can print one line instead of a traceback.

Ranges are declared once, by field name, in `RANGES` (the learners share their hyperparameter
names: `lr`, `gamma`, `hidden`, ...); a field can declare its own with
`field(default=..., metadata={"range": ">= 0"})`. Every `from_dict`/`replace` checks them, so a
bad value stops a run before its directory is written.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from robustrl.core.errors import RobustRLError

T = TypeVar("T")


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """Parse the TOML file `path` (a `what`: "suite", "tuning spec", ...); a missing or
    malformed file is one `RobustRLError` line."""
    path = Path(path)
    if not path.is_file():
        raise RobustRLError(f"{what} {path} not found")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise RobustRLError(f"{what} {path} is malformed TOML: {e}") from None


def parse_value(text: str) -> Any:
    """Parse a command-line value as a TOML value (`1e-3`, `true`, `[64, 64]`), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """`["lr=1e-3", "robust.eps=0.1"]` -> `{"lr": 0.001, "robust.eps": 0.1}`."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RobustRLError(f"--set expects key=value, got '{item}'")
        out[key.strip()] = parse_value(value.strip())
    return out


RANGES: dict[str, str] = {
    **dict.fromkeys(("lr", "actor_lr", "critic_lr", "alpha_lr", "alpha_init", "clip",
                     "clip_value", "target_kl", "max_grad_norm", "max_weight", "temperature",
                     "temperature_start", "temperature_end", "gumbel_temperature",
                     "plan_temperature", "step_size"), "> 0"),
    **dict.fromkeys(("gamma", "gae_lambda", "tau", "expectile", "eps_start", "eps_end",
                     "discrete_entropy_fraction", "rho", "q_gamma"), "[0, 1]"),
    **dict.fromkeys(("steps", "batch_size", "buffer_size", "hidden", "n_envs", "n_steps",
                     "n_epochs", "n_minibatches", "gradient_steps", "train_freq", "log_interval",
                     "target_update_interval", "policy_freq", "n_critics", "checkpoint_every",
                     "segment_length", "epochs", "ensemble", "latent_dim", "horizon", "k",
                     "num_candidates", "n_actions", "max_joint_actions", "buffer_segments",
                     "refresh_every", "active_pool", "q_iterations", "ref_episodes",
                     "eval_every", "eval_episodes", "log_every", "episodes"), ">= 1"),
    **dict.fromkeys(("seed", "ref_seed", "eval_seed", "learning_starts", "eps_decay_steps",
                     "bc_steps", "threads", "queries", "max_queries", "first_refresh",
                     "ent_coef", "vf_coef",
                     "exploration_noise", "policy_noise", "noise_clip", "noise", "cql_alpha",
                     "lam", "eps", "dro_rho", "consistency_coef", "value_coef", "reward_coef",
                     "logit_reg", "awac_lambda", "action_eps", "sigmas", "beta",
                     "waypoint_distance", "waypoint_speed", "waypoint_jitter",
                     "max_steps_per_goal", "p_gain", "d_gain"), ">= 0"),
}
"""Field name -> allowed range of its value (every item of a list): "> 0", ">= 0", ">= 1",
"[0, 1]". `None` (an optional field left unset) is always allowed."""

_RULES = {"> 0": lambda v: v > 0, ">= 0": lambda v: v >= 0, ">= 1": lambda v: v >= 1,
          "[0, 1]": lambda v: 0 <= v <= 1}


def check_range(key: str, value: Any, rule: str) -> None:
    """Raise a one-line `RobustRLError` when `value` (or an item of it) breaks `rule`."""
    items = value if isinstance(value, (list, tuple)) else [value]
    for item in items:
        if isinstance(item, (int, float)) and not isinstance(item, bool) and (
                item != item or not _RULES[rule](item)):  # item != item: NaN
            must = "be in [0, 1]" if rule == "[0, 1]" else f"be {rule}"
            what = f"every value of {key}" if items is value else key
            raise RobustRLError(f"{what} must {must}, got {value!r}")


def check_ranges(cfg: Any, prefix: str = "") -> None:
    """Check every (non-nested) field of dataclass `cfg` against its declared range."""
    for f in dataclasses.fields(cfg):
        rule = f.metadata.get("range", RANGES.get(f.name))
        value = getattr(cfg, f.name)
        if rule is not None and value is not None and not dataclasses.is_dataclass(value):
            check_range(f"{prefix}{f.name}", value, rule)


def _suggest(key: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(key, choices, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"{hint}valid keys: {', '.join(sorted(choices))}"


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Return `value` converted to annotation `tp`, or raise a one-line `RobustRLError`."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        if isinstance(value, str) and value.lower() == "none" and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(value, option, key)
            except RobustRLError as e:
                errors.append(str(e))
        raise RobustRLError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in get_args(tp):
            choices = ", ".join(repr(c) for c in get_args(tp))
            raise RobustRLError(f"{key}: {value!r} is not one of {choices}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise RobustRLError(f"{key}: expected a list like [1, 2], got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise RobustRLError(f"{key}: expected {len(args)} values, got {len(value)}")
            return tuple(coerce(v, a, key) for v, a in zip(value, args))
        item_tp = args[0] if args else Any
        items = [coerce(v, item_tp, key) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise RobustRLError(f"{key}: expected a table like {{a = 1}}, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise RobustRLError(f"{key}: expected a table of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise RobustRLError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise RobustRLError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise RobustRLError(f"{key}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise RobustRLError(f"{key}: expected a string, got {value!r}")
    raise TypeError(f"config field {key} has unsupported annotation {tp!r}")


def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def from_dict(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """Build dataclass `cls` from a (nested) mapping, checking every key and type."""
    hints = _hints(cls)
    names = field_names(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in hints or key not in names:
            raise RobustRLError(f"unknown config key '{prefix}{key}'; {_suggest(key, names)}")
        kwargs[key] = coerce(value, hints[key], f"{prefix}{key}")
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in kwargs and f.init
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:  # e.g. an emptied or edited config.toml
        where = f"{prefix.rstrip('.')}: " if prefix else ""
        raise RobustRLError(f"{where}missing required key(s) {', '.join(missing)}")
    cfg = cls(**kwargs)
    check_ranges(cfg, prefix)
    return cfg


def replace(cfg: T, overrides: Mapping[str, Any], prefix: str = "") -> T:
    """Return a copy of dataclass `cfg` with dotted-key `overrides` applied and type-checked."""
    nested: dict[str, dict[str, Any]] = {}
    flat: dict[str, Any] = {}
    for key, value in overrides.items():
        head, dot, rest = key.partition(".")
        if dot:
            nested.setdefault(head, {})[rest] = value
        else:
            flat[key] = value
    hints = _hints(type(cfg))
    names = field_names(type(cfg))
    changes: dict[str, Any] = {}
    for key, value in flat.items():
        if key not in names:
            raise RobustRLError(f"unknown config key '{prefix}{key}'; {_suggest(key, names)}")
        if dataclasses.is_dataclass(hints[key]) and isinstance(value, Mapping):
            changes[key] = replace(getattr(cfg, key), value, f"{prefix}{key}.")
        else:
            changes[key] = coerce(value, hints[key], f"{prefix}{key}")
    for head, sub in nested.items():
        if head not in names:
            raise RobustRLError(f"unknown config key '{prefix}{head}'; {_suggest(head, names)}")
        current = changes.get(head, getattr(cfg, head))
        if dataclasses.is_dataclass(current):
            changes[head] = replace(current, sub, f"{prefix}{head}.")
        elif isinstance(current, dict):
            changes[head] = {**current, **sub}
        else:
            raise RobustRLError(f"config key '{prefix}{head}' has no sub-keys")
    cfg = dataclasses.replace(cfg, **changes)
    check_ranges(cfg, prefix)
    return cfg


def to_dict(cfg: Any) -> dict[str, Any]:
    """Dataclass -> nested dict of TOML-writable values (tuples become lists, None dropped)."""

    def clean(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: clean(getattr(value, f.name)) for f in dataclasses.fields(value)
                    if getattr(value, f.name) is not None}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if v is not None}
        return value

    return clean(cfg)
