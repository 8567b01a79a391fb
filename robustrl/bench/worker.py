"""What a worker does for one job: train (or reuse / resume) a run, then evaluate its cells.

Runs in a worker process (local pool or Ray); it never touches the results database and
returns plain data, so the driver alone writes SQLite. On Ray (`run_job_shipped`) it does not
touch the run directory either: the run's files travel in the task's arguments and result.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from robustrl.bench.suite import CLEAN, RANDOM, Job, check_score_agents


def init_worker() -> None:
    """Pool-process setup: one torch thread per job (jobs, not threads, use the cores), and
    die with the driver: a SIGKILLed sweep must not leave workers that keep writing run
    directories while the rerun resumes them."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PDEATHSIG
        except OSError:
            pass
    import torch

    torch.set_num_threads(1)


@contextmanager
def _one_thread() -> Iterator[None]:
    """One torch thread per job, restored afterwards so running a job in the driver process
    leaves no trace."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class _ObsRecorder:
    """Keeps the observations of clean rollouts (the inputs of the Lipschitz estimate).

    A plain proxy, so it wraps Gymnasium envs and PettingZoo ParallelEnvs alike (for the
    latter one record is the step's {agent: observation}, kept when every agent observes).
    """

    def __init__(self, env: Any):
        self.env = env
        self.observations: list[np.ndarray] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def _record(self, obs: Any) -> None:
        if isinstance(obs, dict):
            if set(obs) != set(self.env.possible_agents):
                return  # an agent is done: the record would not have the policy's shape
            self.observations.append({a: np.asarray(o, np.float32) for a, o in obs.items()})
            return
        self.observations.append(np.asarray(obs, dtype=np.float32))

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self._record(obs)
        return obs, info

    def step(self, action: Any):
        out = self.env.step(action)
        self._record(out[0])
        return out

    def close(self) -> None:
        self.env.close()


def _lipschitz(agent: Any, observations: list[Any], job: Job) -> float | None:
    """Empirical local Lipschitz constant of the policy; None if it cannot be attacked.

    Multi-agent: of the scored agents' joint policy, on their own observations concatenated."""
    from robustrl.perturb import empirical_lipschitz

    if not observations:
        return None
    if len(observations) > job.lipschitz_obs:
        pick = np.linspace(0, len(observations) - 1, job.lipschitz_obs).round().astype(int)
        observations = [observations[i] for i in pick]
    if isinstance(observations[0], dict):
        names = job.score_agents or list(agent.agents)
        policy, scale = agent.joint_policy(names), agent.joint_obs_scale(names)
        obs = np.stack([np.concatenate([o[a].ravel() for a in names]) for o in observations])
    else:
        policy, scale, obs = agent.policy_output, agent.obs_scale, np.stack(observations)
    try:
        return float(empirical_lipschitz(policy, obs, job.lipschitz_eps, obs_scale=scale,
                                         seed=0))
    except NotImplementedError:  # an agent without a differentiable policy_output
        return None


def _score(result: dict[str, Any], job: Job) -> list[float]:
    """Each episode's score: its return, or the scored agents' returns summed."""
    if not job.score_agents:
        return [float(x) for x in result["returns"]]
    by_agent = result.get("returns_by_agent", {})
    check_score_agents(job.score_agents, list(by_agent), job.env)
    return [float(sum(by_agent[a][i] for a in job.score_agents))
            for i in range(len(result["returns"]))]


def trained_agent(job: Job):
    """The job's trained agent: reuse a finished run, resume a partial one where the resume
    is exact (else retrain it from scratch), else train.

    No training bar: it would garble the driver's bar over cells. The agent returned only
    acts, so its envs are closed: evaluation envs then run in this process (libsumo allows
    one simulation per process, and dynamics perturbations need it at hand)."""
    from robustrl.train import load_run_agent, load_run_config, train
    from robustrl.train.rundir import checkpoint_is_exact, clear_run

    run_dir = Path(job.run_dir)
    if not (run_dir / "agent.pt").exists():
        if (run_dir / "config.toml").exists() and not checkpoint_is_exact(run_dir):
            clear_run(run_dir)  # its env state was not saved: only a fresh run is the same
        if (run_dir / "config.toml").exists():  # interrupted: resume it exactly
            trained = train(load_run_config(run_dir), run_dir, resume=True,
                            show_progress=False)
        else:
            trained = train(job.run, run_dir, show_progress=False)
        trained.close()
    # Always evaluate the agent as saved, so a reused run gives the same rows as a fresh one.
    agent = load_run_agent(run_dir)
    agent.close()
    return agent


class RandomPolicy:
    """The random pseudo-agent: an untrained learner of the job's kind (so every env and
    perturbation is built as for the learner) whose actions are drawn uniformly from its
    action space, seeded by the job's seed."""

    def __init__(self, job: Job):
        import copy

        from robustrl.agents import agent_class
        from robustrl.reward import HeronConfig, RewardConfig
        from robustrl.train.pipeline import training_envs

        cfg = job.run
        cls = agent_class(cfg.run.agent)
        envs, _ = training_envs(cls, cfg.run.env, cfg.env, cfg.agent, RewardConfig(),
                                HeronConfig(), cfg.run.seed)
        self.agent = cls(envs, cfg.agent, seed=cfg.run.seed, env_kwargs=cfg.env)
        self.agent.close()
        self.space = copy.deepcopy(self.agent.action_space)
        self.space.seed(job.seed)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.agent, name)

    def act(self, obs: Any, deterministic: bool = True) -> Any:
        if isinstance(obs, dict):  # multi-agent: one action per acting agent
            return {a: self.space.sample() for a in obs}
        return self.space.sample()


class ControllerPolicy(RandomPolicy):
    """A traffic controller pseudo-agent (`controllers`): acts from the simulation of the env
    it is attached to; the untrained learner only supplies the env plumbing."""

    def __init__(self, job: Job):
        super().__init__(job)
        self.name, self.controller = job.reference, None

    def attach(self, env: Any) -> Any:
        """Control `env` (an evaluation env, not a factory: traffic is never batched)."""
        from robustrl.envs.traffic_baselines import make_controller

        self.controller = make_controller(self.name, env)
        return _ResetHook(env, self.controller.reset)

    def act(self, obs: Any, deterministic: bool = True) -> Any:
        return self.controller.act(obs)


class _ResetHook:
    """`env`, calling `hook()` before every reset (a controller's per-episode state)."""

    def __init__(self, env: Any, hook: Any):
        self.env, self.hook = env, hook

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def reset(self, **kwargs: Any):
        self.hook()
        return self.env.reset(**kwargs)


def run_job(job: Job) -> dict[str, Any]:
    """Train/reuse the run, evaluate every cell, estimate the policy's Lipschitz constant."""
    with _one_thread():
        return _run_job(job)


def _run_job(job: Job) -> dict[str, Any]:
    from robustrl.bench.adversary import cell_adversary
    from robustrl.bench.transfer import run_lock, surrogate_agent
    from robustrl.train import eval_env, evaluate
    from robustrl.train.evaluation import batchable

    start = time.perf_counter()
    with run_lock(job.run_dir):  # another job may be training it as its surrogate
        if not job.reference:
            agent = trained_agent(job)
        elif job.reference == RANDOM:
            agent = RandomPolicy(job)
        else:
            agent = ControllerPolicy(job)
    train_seconds = time.perf_counter() - start
    cells, observations = [], None
    for cell in job.cells:
        t0 = time.perf_counter()
        adversary = None if cell.spec == CLEAN else cell_adversary(agent, job, cell.spec)
        if cell.spec == CLEAN:
            env = recorder = _ObsRecorder(eval_env(agent))
        elif adversary is None and batchable(agent, [cell.spec]):  # many episodes at once
            env = partial(eval_env, agent, [cell.spec], seed=job.eval_seed)
        else:
            env = eval_env(agent, [cell.spec], seed=job.eval_seed, adversary=adversary,
                           surrogate=surrogate_agent(job, cell.spec, trained_agent))
        if isinstance(agent, ControllerPolicy):
            env = agent.attach(env)
        result = evaluate(agent, job.episodes, seed=job.eval_seed, env=env)
        returns = _score(result, job)
        if cell.spec == CLEAN:
            observations = recorder.observations
        cells.append({"config_hash": cell.id, "perturbation": cell.perturbation,
                      "spec": cell.spec, "strength": cell.strength,
                      "returns": returns,
                      "lengths": [int(x) for x in result["lengths"]],
                      "seconds": time.perf_counter() - t0})
    if observations is None and not job.reference:  # clean cell stored earlier: one episode
        recorder = _ObsRecorder(eval_env(agent))
        evaluate(agent, 1, seed=job.eval_seed, env=recorder)
        observations = recorder.observations
    lipschitz = None if job.reference else _lipschitz(agent, observations, job)
    return {"run": job.run_id, "agent": job.label, "env": job.env, "seed": job.seed,
            "run_dir": job.run_dir, "steps": int(agent.num_steps), "lipschitz": lipschitz,
            "lipschitz_eps": job.lipschitz_eps, "train_seconds": train_seconds,
            "eval_seed": job.eval_seed, "cells": cells}


SHIP_SKIP = frozenset({"checkpoint.pt"})
"""Run files that stay on the worker: the full training state (replay buffer) is only needed
to resume an interrupted run, and a shipped job that is interrupted restarts from scratch."""


def _run_files(run_dir: Path) -> dict[str, bytes]:
    return {p.relative_to(run_dir).as_posix(): p.read_bytes()
            for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name not in SHIP_SKIP}


def shipped_files(job: Job) -> dict[str, bytes]:
    """Driver side: the files of the job's run directory if it holds a finished run (reused
    as it is, with its cached adversaries); {} otherwise (the worker trains from scratch)."""
    run_dir = Path(job.run_dir)
    return _run_files(run_dir) if (run_dir / "agent.pt").is_file() else {}


def run_job_shipped(job: Job, files: dict[str, bytes]) -> dict[str, Any]:
    """`run_job` in a private temporary folder seeded with `files`; the result carries the
    run's files under "files" ({relative path: bytes}) for the driver to write."""
    with tempfile.TemporaryDirectory(prefix="robustrl-job-") as tmp:
        local = Path(tmp) / "run"
        for name, data in files.items():
            (local / name).parent.mkdir(parents=True, exist_ok=True)
            (local / name).write_bytes(data)
        result = run_job(dataclasses.replace(job, run_dir=str(local)))
        result["files"] = _run_files(local)
    result["run_dir"] = job.run_dir
    return result


def write_run_files(run_dir: str | Path, files: dict[str, bytes]) -> None:
    """Driver side: write a shipped job's files into its run directory, each atomically."""
    from robustrl.core.io import atomic_write_bytes

    # agent.pt last: a run directory with a final agent is complete (a rerun reuses it)
    for name, data in sorted(files.items(), key=lambda item: item[0] == "agent.pt"):
        path = Path(run_dir) / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise ValueError(f"refusing to write {name} outside the run directory")
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
