"""What an env id is (`EnvSpec`, its reward `Factor`s) and which id an env was made from.

These are plain records, imported by the registry, the reward-factor wrappers and the worker
proxies alike; this module imports nothing else of `robustrl.envs`, so the registry and the
wrappers it applies do not import each other.

`identity(env)` answers "which id and keyword arguments made this env?" for any env that
`robustrl.envs.make` (or `make_subprocess`) returned, through any stack of wrappers above it, so
that an agent handed an env instance resolves the same configuration as one handed the id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["single", "multi"]

_MADE_AS = "_robustrl_made_as"
"""Instance attribute holding (env_id, kwargs) on the outermost env `make` returns. Private
(underscored), so PettingZoo wrappers refuse to forward it and a lookup never finds an inner
env's mark by accident; read through `vars()` only."""


@dataclass(frozen=True)
class Factor:
    """A named reward factor an env reports in `info["reward_factors"]` on every step."""

    name: str
    direction: Literal["higher", "lower"] = "higher"
    """Which way is better: HERON and the reports compare factors with this sign."""
    description: str = ""
    source: str | None = None
    """Info key the value is read from (times `scale`); None when the env computes it."""
    scale: float = 1.0

    @property
    def sign(self) -> float:
        return 1.0 if self.direction == "higher" else -1.0


@dataclass(frozen=True)
class EnvSpec:
    """Everything the suite knows about an id before making it."""

    id: str
    entry_point: str | Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    kind: Kind | None = None
    """single: Gymnasium env; multi: PettingZoo ParallelEnv; None: found out when made."""
    factors: tuple[Factor, ...] = ()
    ranking: tuple[str, ...] = ()
    """Factor names, most important first (HERON's default ranking)."""
    description: str = ""
    observation_space: str = ""
    """str() of the (per-agent) observation space, checked against the real env by the tests."""
    action_space: str = ""
    extra: str = ""
    """The pip extra or package to install when the entry point's import fails."""

    @property
    def family(self) -> str:
        return self.id.split("/", 1)[0]


def mark(env: Any, env_id: str, kwargs: dict[str, Any]) -> Any:
    """Record on `env` (the outermost env handed to the user) that `env_id` and `kwargs` (the
    overrides given to `make`, not the spec's defaults) made it; returns `env`."""
    vars(env)[_MADE_AS] = (env_id, dict(kwargs))
    return env


def wrapper_chain(env: Any) -> Iterator[Any]:
    """`env`, then each env it wraps, following `.env` (Gymnasium wrappers, PettingZoo's
    BaseParallelWrapper, robustrl's perturbation and reward wrappers). The attribute is read
    from the instance first, so wrappers whose `__getattr__` forwards to the inner env are
    walked one layer at a time; a chain that loops is walked once."""
    seen: set[int] = set()
    while env is not None and id(env) not in seen:
        seen.add(id(env))
        yield env
        own = vars(env) if hasattr(env, "__dict__") else {}
        env = own["env"] if "env" in own else getattr(env, "env", None)


def identity(env: Any) -> tuple[str, dict[str, Any]] | None:
    """`(env_id, kwargs)` of an env made by `robustrl.envs.make(env_id, **kwargs)`, found
    through any wrappers added after `make`; None for an env `make` did not return (a user's
    own class, a bare `gymnasium.make`). `kwargs` is a copy: editing it changes nothing."""
    for layer in wrapper_chain(env):
        made_as = vars(layer).get(_MADE_AS) if hasattr(layer, "__dict__") else None
        if made_as is not None:
            env_id, kwargs = made_as
            return env_id, dict(kwargs)
    return None
