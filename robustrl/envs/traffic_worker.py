"""Envs in child processes: concurrent traffic simulations despite libsumo's one per process.

libsumo runs SUMO inside the Python process and holds one simulation per process, so two
traffic envs (two seeds, train + eval, a vector of envs) each need their own process. These
proxies make any registered id in a child process (the 'spawn' start method by default: a fresh
interpreter with no simulation in it) and forward the Gymnasium / PettingZoo API over a pipe:

    env = make_subprocess("traffic/2x2grid", num_seconds=600)   # a PettingZoo ParallelEnv
    vec = make_vec("traffic/single-intersection", 4)              # gymnasium AsyncVectorEnv

`call(name, *args)` runs a method of the child's env (its `unwrapped`), e.g. to read metrics.
Scripts using them need the usual `if __name__ == "__main__":` guard of 'spawn'.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import traceback
from functools import partial
from multiprocessing.connection import Connection
from typing import Any

import gymnasium as gym
from pettingzoo import ParallelEnv

from robustrl.core.errors import RobustRLError

_TIMEOUT = 120.0  # seconds to wait for a child's answer (a large network loads in a few)


def _serve(conn: Connection, env_id: str, kwargs: dict[str, Any]) -> None:
    """Child process: make the env, then answer (command, payload) messages until 'close'."""
    env = None
    try:
        from robustrl.envs import make

        env = make(env_id, **kwargs)
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

    def __init__(self, env_id: str, kwargs: dict[str, Any], context: str):
        ctx = mp.get_context(context)
        self.env_id = env_id
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, env_id, kwargs), daemon=True,
                                   name=f"robustrl-env-{env_id}")
        self.process.start()
        child.close()
        self.info = self._answer()

    def _answer(self) -> Any:
        if not self.conn.poll(_TIMEOUT):
            self.kill()
            raise RobustRLError(f"{self.env_id}: the worker process did not answer in "
                                f"{_TIMEOUT:.0f} s")
        try:
            status, value = self.conn.recv()
        except EOFError:
            self.kill()
            raise RobustRLError(f"{self.env_id}: the worker process died (exit code "
                                f"{self.process.exitcode})") from None
        if status == "error":
            self.kill()
            raise RobustRLError(f"{self.env_id} (in worker process): {value[0]}")
        return value

    def request(self, cmd: str, payload: Any = None) -> Any:
        if self.conn.closed or not self.process.is_alive():
            raise RobustRLError(f"{self.env_id}: the worker process is closed; make a new env")
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


class SubprocessEnv(gym.Env):
    """A Gymnasium env running in a child process (same spaces, same step/reset results)."""

    def __init__(self, env_id: str, context: str = "spawn", **kwargs: Any):
        self._remote = _Remote(env_id, kwargs, context)
        if "observation_space" not in self._remote.info:
            self._remote.close()
            raise RobustRLError(f"{env_id} is multi-agent: use SubprocessParallelEnv")
        self.observation_space = self._remote.info["observation_space"]
        self.action_space = self._remote.info["action_space"]
        self.metadata = self._remote.info["metadata"]

    @property
    def process(self) -> mp.process.BaseProcess:
        return self._remote.process

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        return self._remote.request("reset", {"seed": seed, "options": options})

    def step(self, action: Any):
        return self._remote.request("step", action)

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run method `name` of the child's env (its `unwrapped`) and return the result."""
        return self._remote.request("call", (name, args, kwargs))

    def close(self) -> None:
        self._remote.close()

    def __del__(self) -> None:
        remote = getattr(self, "_remote", None)
        if remote is not None:
            remote.kill()


class SubprocessParallelEnv(ParallelEnv):
    """A PettingZoo ParallelEnv running in a child process."""

    def __init__(self, env_id: str, context: str = "spawn", **kwargs: Any):
        self._remote = _Remote(env_id, kwargs, context)
        info = self._remote.info
        if "possible_agents" not in info:
            self._remote.close()
            raise RobustRLError(f"{env_id} is single-agent: use SubprocessEnv")
        self.possible_agents = info["possible_agents"]
        self.agents: list[str] = []
        self.metadata = info["metadata"]
        self.observation_spaces = info["observation_spaces"]
        self.action_spaces = info["action_spaces"]
        self.render_mode = None

    @property
    def process(self) -> mp.process.BaseProcess:
        return self._remote.process

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

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run method `name` of the child's env (its `unwrapped`) and return the result."""
        return self._remote.request("call", (name, args, kwargs))

    def close(self) -> None:
        self._remote.close()

    def __del__(self) -> None:
        remote = getattr(self, "_remote", None)
        if remote is not None:
            remote.kill()


def make_subprocess(env_id: str, *, context: str = "spawn",
                    **kwargs: Any) -> SubprocessEnv | SubprocessParallelEnv:
    """`robustrl.envs.make(env_id, **kwargs)` in a child process; the proxy has the same API."""
    from robustrl.envs import spec

    kind = spec(env_id).kind
    single_agent = kwargs.get("single_agent")
    if single_agent is not None:
        kind = "single" if single_agent else "multi"
    if kind == "multi":
        return SubprocessParallelEnv(env_id, context=context, **kwargs)
    if kind == "single":
        return SubprocessEnv(env_id, context=context, **kwargs)
    try:  # kind unknown until made: try single-agent, fall back to multi-agent
        return SubprocessEnv(env_id, context=context, **kwargs)
    except RobustRLError as e:
        if "is multi-agent" not in str(e):
            raise
        return SubprocessParallelEnv(env_id, context=context, **kwargs)


def _make_in_child(env_id: str, kwargs: dict[str, Any]) -> gym.Env:
    from robustrl.envs import make

    return make(env_id, **kwargs)


def make_vec(env_id: str, num_envs: int, *, context: str = "spawn",
             **kwargs: Any) -> gym.vector.AsyncVectorEnv:
    """`num_envs` copies of a single-agent id, each in its own process: gymnasium's
    AsyncVectorEnv is enough for that, given the 'spawn' start method (a forked child would
    inherit the parent's libsumo state and refuse to start a second simulation)."""
    from robustrl.envs import spec

    if num_envs < 1:
        raise RobustRLError(f"num_envs must be >= 1, got {num_envs}")
    single_agent = kwargs.get("single_agent")
    if (spec(env_id).kind == "multi" and not single_agent) or single_agent is False:
        raise RobustRLError(f"make_vec needs a single-agent env and {env_id} is multi-agent; "
                            "use make_subprocess once per env (or single_agent=True)")
    fns = [partial(_make_in_child, env_id, kwargs) for _ in range(num_envs)]
    return gym.vector.AsyncVectorEnv(fns, context=context)
