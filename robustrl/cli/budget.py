"""What a training budget really buys: the note `train` and `quickstart` print about it."""

from __future__ import annotations

from typing import Any


def check_budget(cfg: Any) -> list[str]:
    """Notes on a budget the learner cannot honour exactly, for the log (config.toml records
    the rounded run.steps): an on-policy learner trains whole rollouts of n_envs × n_steps env
    steps, so run.steps is rounded up to a multiple; an off-policy budget that ends before
    learning starts trains nothing."""
    from robustrl.agents import capabilities

    agent, steps, notes = cfg.agent, cfg.run.steps, []
    if capabilities(cfg.run.agent).learning == "on-policy" and hasattr(agent, "n_steps"):
        rollout = agent.n_steps * getattr(agent, "n_envs", 1)
        rounded = -(-steps // rollout) * rollout
        if rounded != steps:
            notes.append(f"note: {cfg.run.agent} trains whole rollouts of {rollout} env steps "
                         f"(n_envs × n_steps): --steps {steps} became {rounded} (config.toml's "
                         "run.steps)")
            cfg.run.steps = rounded
    starts = getattr(agent, "learning_starts", None)
    if starts is not None and steps <= starts:
        notes.append(f"warning: --steps {steps} <= learning_starts {starts}: {cfg.run.agent} "
                     "only collected data and never updated; raise --steps or lower "
                     "learning_starts (--set learning_starts=...)")
    return notes
