"""Evaluating what was trained: a run directory's final or best agent, or a Stable-Baselines3
model file, clean or perturbed, optionally recording every episode as video."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from robustrl.agents.base import Agent
from robustrl.core.errors import RobustRLError
from robustrl.train.evaluation import batchable, evaluate
from robustrl.train.pipeline import eval_env
from robustrl.train.run import load_run_agent, load_run_config
from robustrl.train.video import prepare_headless, record


def evaluate_agent(agent: Agent, episodes: int, perturb: Sequence[str] = (),
                   seed: int = 10_000, video: str | Path | None = None) -> dict[str, Any]:
    """`evaluate` on the agent's env under the perturbation specs `perturb`; with `video`, every
    episode is also written to that directory as mp4."""
    if video is not None and not agent.env_id:
        raise RobustRLError("--video needs an agent whose env has a registered id (it remakes "
                            "the env with render_mode='rgb_array')")
    if video is None and batchable(agent, perturb):  # many episodes at once, same returns
        env = partial(eval_env, agent, perturb, seed=seed)
    else:
        env = eval_env(agent, perturb, seed=seed, render_mode="rgb_array" if video else None)
    if video is not None:
        env = record(env, video, prefix=agent.env_id.replace("/", "-"))
    result = evaluate(agent, episodes, seed=seed, env=env)
    result.update(agent=agent.name, env=agent.env_id, perturbations=list(perturb))
    if video is not None:
        result["video"] = str(video)
    return result


def evaluate_run(run_dir: str | Path, episodes: int, perturb: Sequence[str] = (),
                 seed: int = 10_000, which: str = "final",
                 video: str | Path | None = None) -> dict[str, Any]:
    """Evaluate a run directory's `which` agent ("final" or "best", see `load_run_agent`);
    the result of `evaluate` plus run, which, agent, env, perturbations, the steps trained and
    planned, `finished` and, for an unfinished run (its latest checkpoint), a `note`."""
    if video is not None:
        prepare_headless()  # before anything imports mujoco
    agent = load_run_agent(run_dir, which)
    agent.close()  # it only acts from here on: its evaluation env runs in this process
    planned = load_run_config(run_dir).run.steps
    finished = (Path(run_dir) / "agent.pt").exists()
    result = {"run": str(run_dir), "which": which,
              **evaluate_agent(agent, episodes, perturb, seed, video),
              "steps": int(agent.num_steps), "planned_steps": planned, "finished": finished}
    if not finished:
        result["note"] = (f"{run_dir} is unfinished: evaluated its checkpoint at step "
                          f"{agent.num_steps} of {planned} planned (robustrl train --resume "
                          f"{run_dir} finishes it)")
    return result


def evaluate_sb3(model: str | Path, algo: str, env_id: str, episodes: int,
                 perturb: Sequence[str] = (), seed: int = 10_000,
                 video: str | Path | None = None,
                 env_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate a Stable-Baselines3 model file (`model.save(...)`'s zip) of algorithm `algo` on
    robustrl env `env_id`, like a run (extra robustrl[sb3])."""
    from robustrl.agents.sb3 import load_zip

    if video is not None:
        prepare_headless()
    agent = load_zip(algo, model, env_id, env_kwargs)
    agent.close()
    return {"run": str(model), "which": "sb3",
            **evaluate_agent(agent, episodes, perturb, seed, video)}


__all__ = ["evaluate_agent", "evaluate_run", "evaluate_sb3"]
