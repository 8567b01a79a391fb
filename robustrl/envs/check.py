"""Check an environment before anything trains on it: one line per problem.

`check(make_env, spec)` runs the library's own API checker — Gymnasium's `check_env` for a
single-agent env, PettingZoo's `parallel_api_test` for a `ParallelEnv` — and then robustrl's
checks on the env as `make(id)` returns it: every observation lies in its declared space
(shape, dtype, bounds), every reward is finite, and every declared reward factor is present
and finite in each step's `info["reward_factors"]`. A mismatch then surfaces here, named,
instead of deep inside a replay buffer (`could not broadcast input array ...`).
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
from pettingzoo import ParallelEnv

from robustrl.core.errors import MissingExtraError
from robustrl.envs.factors import KEY
from robustrl.envs.specs import EnvSpec

STEPS = 20
"""Random-action steps of robustrl's own checks (resetting when an episode ends)."""


class CheckResult(NamedTuple):
    """`problems` make the env unusable (an exception or assertion of the API checker, a
    failed robustrl check); `notes` are the checker's advice (warnings such as infinite Box
    bounds), shown but not failing."""

    problems: list[str]
    notes: list[str]


def _short(x: Any, limit: int = 80) -> str:
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(x)).split())  # no colour codes
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def space_problem(x: Any, space: gym.Space, where: str) -> str | None:
    """Why `x` is not an element of `space` (shape, dtype, bounds), or None if it is."""
    if isinstance(space, gym.spaces.Box):
        arr = np.asarray(x)
        if arr.shape != space.shape:
            return f"{where} has shape {arr.shape}, but its space {space} wants {space.shape}"
        if not np.can_cast(arr.dtype, space.dtype):
            return f"{where} has dtype {arr.dtype}, but its space wants {space.dtype}"
        if not np.all(np.isfinite(arr)) and np.all(np.isfinite(space.low)):
            return f"{where} is not finite: {_short(arr)}"
        if not space.contains(arr.astype(space.dtype)):
            return f"{where} is outside its space's bounds {space}: {_short(arr)}"
        return None
    if isinstance(space, gym.spaces.Dict) and isinstance(x, dict):
        for key, sub in space.spaces.items():
            if key not in x:
                return f"{where} lacks key '{key}' of its Dict space"
            problem = space_problem(x[key], sub, f"{where}['{key}']")
            if problem:
                return problem
        return None
    try:
        ok = space.contains(x)
    except Exception:  # a malformed value can make contains() itself fail
        ok = False
    return None if ok else f"{where} is not in its space {space}: {_short(x)}"


def _factor_problems(info: Any, spec: EnvSpec, where: str) -> list[str]:
    factors = info.get(KEY) if isinstance(info, dict) else None
    if not isinstance(factors, dict):
        return [f"{where}: info has no '{KEY}' dict"]
    problems = []
    missing = [f.name for f in spec.factors if f.name not in factors]
    if missing:
        problems.append(f"{where}: declared factor(s) {missing} missing from info['{KEY}'] "
                        f"(it has {sorted(factors)}; declare what the env reports)")
    for name, value in factors.items():
        try:
            finite = math.isfinite(float(value))
        except (TypeError, ValueError):
            finite = False
        if not finite:
            problems.append(f"{where}: factor '{name}' is not a finite number: {_short(value)}")
    return problems


def _reward_problem(reward: Any, where: str) -> str | None:
    try:
        return None if math.isfinite(float(reward)) else f"{where}: reward {reward} is not finite"
    except (TypeError, ValueError):
        return f"{where}: reward {_short(reward)} is not a number"


def _own_single(env: gym.Env, spec: EnvSpec, seed: int) -> list[str]:
    obs, _ = env.reset(seed=seed)
    problems = [p for p in [space_problem(obs, env.observation_space, "reset() observation")]
                if p]
    env.action_space.seed(seed)
    for t in range(STEPS):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        where = f"step {t}"
        problems += [p for p in (space_problem(obs, env.observation_space, f"{where} observation"),
                                 _reward_problem(reward, where)) if p]
        problems += _factor_problems(info, spec, where)
        if problems:
            break
        if terminated or truncated:
            env.reset()
    return problems


def _own_parallel(env: ParallelEnv, spec: EnvSpec, seed: int) -> list[str]:
    obs, _ = env.reset(seed=seed)
    problems = [p for a, o in obs.items()
                if (p := space_problem(o, env.observation_space(a), f"reset() observation[{a}]"))]
    for a in env.possible_agents:
        env.action_space(a).seed(seed)
    for t in range(STEPS):
        if not env.agents:
            obs, _ = env.reset()
        actions = {a: env.action_space(a).sample() for a in env.agents}
        obs, rewards, terminated, truncated, infos = env.step(actions)
        for a in actions:  # every agent that acted gets an entry in each dict
            where = f"step {t} [{a}]"
            lacking = [name for name, d in (("observation", obs), ("reward", rewards),
                                            ("terminated", terminated), ("truncated", truncated),
                                            ("info", infos)) if a not in d]
            if lacking:
                problems.append(f"{where}: step() returned no {'/'.join(lacking)} for it")
                continue
            problems += [p for p in (space_problem(obs[a], env.observation_space(a),
                                                   f"{where} observation"),
                                     _reward_problem(rewards[a], where)) if p]
            problems += _factor_problems(infos[a], spec, where)
        if problems:
            break
    return problems


def _api_check(make_env: Callable[[], Any]) -> CheckResult:
    """The library's own checker on a fresh env: its assertion or exception, and warnings."""
    env = None
    problems: list[str] = []
    notes: list[str] = []
    try:
        env = make_env()
        with warnings.catch_warnings(record=True) as caught, \
                contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("always")
            if isinstance(env, ParallelEnv):
                from pettingzoo.test import parallel_api_test

                parallel_api_test(env, num_cycles=STEPS)
            else:
                from gymnasium.utils.env_checker import check_env

                check_env(env.unwrapped, skip_render_check=True)
        notes += sorted({f"api check: {_short(w.message, 160)}" for w in caught
                         if issubclass(w.category, UserWarning)})
    except Exception as e:  # the checkers report by assertion or by the env's own exception
        problems.append(f"api check: {_short(_first_line(e), 160)}")
    finally:
        if env is not None:
            with contextlib.suppress(Exception):
                env.close()
    return CheckResult(problems, notes)


def check(make_env: Callable[[], Any], spec: EnvSpec, seed: int = 0) -> CheckResult:
    """Every problem (and note) found in the env `make_env()` builds for `spec`, one line
    each."""
    try:
        env = make_env()
    except MissingExtraError:
        raise  # not the env's fault: the one line naming the extra
    except Exception as e:
        return CheckResult([f"making it failed: {_short(_first_line(e), 160)}"], [])
    try:
        own = (_own_parallel(env, spec, seed) if isinstance(env, ParallelEnv)
               else _own_single(env, spec, seed))
    except Exception as e:
        own = [f"stepping it raised {_short(_first_line(e), 160)}"]
    finally:
        with contextlib.suppress(Exception):
            env.close()
    api = _api_check(make_env)
    return CheckResult(own + api.problems, api.notes)
