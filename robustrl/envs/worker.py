"""Envs in child processes: the proxies behind concurrent traffic simulations.

libsumo runs SUMO inside the Python process and holds one simulation per process, so a second
traffic env (two seeds, train + eval, a vector of envs) needs its own process. `spawn(factory,
name)` calls `factory()` in a child process (the 'spawn' start method by default: a fresh
interpreter with no simulation in it) and returns a proxy with the child env's spaces that
forwards the Gymnasium (`SubprocessEnv`) or PettingZoo (`SubprocessParallelEnv`) API over a
pipe. The factory must pickle (a module-level function, or a `functools.partial` of one).

This module knows no env ids: `robustrl.envs.make` uses it when a traffic env cannot run in
this process, and `robustrl.envs.make_subprocess` / `make_vec` for any id on request.
`call(name, *args)` runs a method of the child's env (its `unwrapped`); `call_env(fn, *args)`
runs `fn(env, *args)` on the child's env, for helpers that need the simulation at hand.
Scripts using them need the usual `if __name__ == "__main__":` guard of 'spawn'.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import pickle
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import gymnasium as gym
from pettingzoo import ParallelEnv

from robustrl.core.errors import RobustRLError
from robustrl.envs.specs import wrapper_chain

_TIMEOUT = 120.0  # seconds to wait for a child's answer (a large network loads in a few)


def _serve(conn: Connection, factory: Callable[[], Any]) -> None:
    """Child process: make the env, then answer (command, payload) messages until 'close'."""
    env = None
    try:
        env = factory()
        if hasattr(env, "possible_agents"):
            agents = list(env.possible_agents)
            spaces = {"possible_agents": agents, "metadata": getattr(env, "metadata", {}),
                      "observation_spaces": {a: env.observation_space(a) for a in agents},
                      "action_spaces": {a: env.action_space(a) for a in agents}}
        else:
            spaces = {"observation_space": env.observation_space,
                      "action_space": env.action_space, "metadata": env.metadata}
        conn.send(("ok", spaces))
        while True:
            cmd, payload = conn.recv()
            if cmd == "step":
                result: Any = env.step(payload)
                if hasattr(env, "possible_agents"):
                    result = (*result, list(env.agents))
            elif cmd == "reset":
                result = env.reset(**payload)
                if hasattr(env, "possible_agents"):
                    result = (*result, list(env.agents))
            elif cmd == "call":
                name, args, kw = payload
                result = getattr(env.unwrapped, name)(*args, **kw)
            elif cmd == "call_env":
                fn, args, kw = payload
                result = fn(env, *args, **kw)
            elif cmd == "close":
                env.close()
                env = None
                conn.send(("ok", None))
                return
            else:
                raise ValueError(f"unknown command {cmd!r}")
            conn.send(("ok", result))
    except (KeyboardInterrupt, EOFError):
        pass
    except Exception as e:  # noqa: BLE001 - every failure goes back to the parent as one line
        msg = str(e) if isinstance(e, RobustRLError) else f"{type(e).__name__}: {e}"
        with contextlib.suppress(BrokenPipeError, OSError):
            conn.send(("error", (msg, traceback.format_exc())))
    finally:
        if env is not None:
            env.close()
        conn.close()


class _Remote:
    """One child process running one env, and the pipe to it."""

    def __init__(self, factory: Callable[[], Any], name: str, context: str):
        ctx = mp.get_context(context)
        self.name = name
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, factory), daemon=True,
                                   name=f"robustrl-env-{name}")
        try:
            self.process.start()
        except (pickle.PicklingError, AttributeError, TypeError) as e:
            self.conn.close()
            raise RobustRLError(f"{name}: cannot run in a worker process, its arguments do not "
                                f"pickle ({e}); pass module-level functions, not lambdas") \
                from None
        finally:
            child.close()
        self.info = self._answer()

    def _answer(self) -> Any:
        if not self.conn.poll(_TIMEOUT):
            self.kill()
            raise RobustRLError(f"{self.name}: the worker process did not answer in "
                                f"{_TIMEOUT:.0f} s")
        try:
            status, value = self.conn.recv()
        except EOFError:
            self.kill()
            raise RobustRLError(f"{self.name}: the worker process died (exit code "
                                f"{self.process.exitcode})") from None
        if status == "error":
            self.kill()
            raise RobustRLError(f"{self.name} (in worker process): {value[0]}")
        return value

    def request(self, cmd: str, payload: Any = None) -> Any:
        if self.conn.closed or not self.process.is_alive():
            raise RobustRLError(f"{self.name}: the worker process is closed; make a new env")
        self.conn.send((cmd, payload))
        return self._answer()

    def close(self) -> None:
        if self.conn.closed:
            return
        try:
            if self.process.is_alive():
                self.conn.send(("close", None))
                if self.conn.poll(10):
                    self.conn.recv()
        except (BrokenPipeError, EOFError, OSError):
            pass
        self.process.join(10)
        self.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        if not self.conn.closed:
            self.conn.close()


class _Proxy:
    """What both proxies add to the env API: the child process, calls into it, and closing."""

    _remote: _Remote

    @property
    def process(self) -> mp.process.BaseProcess:
        return self._remote.process

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run method `name` of the child's env (its `unwrapped`) and return the result."""
        return self._remote.request("call", (name, args, kwargs))

    def call_env(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run `fn(env, *args, **kwargs)` on the child's env and return the result."""
        return self._remote.request("call_env", (fn, args, kwargs))

    def close(self) -> None:
        self._remote.close()

    def __del__(self) -> None:
        remote = getattr(self, "_remote", None)
        if remote is not None:
            remote.kill()


class SubprocessEnv(_Proxy, gym.Env):
    """A Gymnasium env running in a child process (same spaces, same step/reset results)."""

    def __init__(self, remote: _Remote):
        self._remote = remote
        self.observation_space = remote.info["observation_space"]
        self.action_space = remote.info["action_space"]
        self.metadata = remote.info["metadata"]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        return self._remote.request("reset", {"seed": seed, "options": options})

    def step(self, action: Any):
        return self._remote.request("step", action)


class SubprocessParallelEnv(_Proxy, ParallelEnv):
    """A PettingZoo ParallelEnv running in a child process."""

    def __init__(self, remote: _Remote):
        self._remote = remote
        info = remote.info
        self.possible_agents = info["possible_agents"]
        self.agents: list[str] = []
        self.metadata = info["metadata"]
        self.observation_spaces = info["observation_spaces"]
        self.action_spaces = info["action_spaces"]
        self.render_mode = None

    def observation_space(self, agent: str) -> gym.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> gym.Space:
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, infos, self.agents = self._remote.request("reset", {"seed": seed, "options": options})
        return obs, infos

    def step(self, actions: dict[str, Any]):
        *result, self.agents = self._remote.request("step", actions)
        return tuple(result)


def spawn(factory: Callable[[], Any], name: str,
          context: str = "spawn") -> SubprocessEnv | SubprocessParallelEnv:
    """`factory()` in a child process, behind the proxy of its kind (Gymnasium or PettingZoo,
    as the child reports); `name` labels the process and its errors."""
    remote = _Remote(factory, name, context)
    if "possible_agents" in remote.info:
        return SubprocessParallelEnv(remote)
    return SubprocessEnv(remote)


def find_worker(env: Any) -> SubprocessEnv | SubprocessParallelEnv | None:
    """The worker proxy inside `env` (through wrappers), or None for an env in this process."""
    for layer in wrapper_chain(env):
        if isinstance(layer, (SubprocessEnv, SubprocessParallelEnv)):
            return layer
    return None
