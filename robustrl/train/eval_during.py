"""Evaluation during training (`run.eval_every`, `run.eval_episodes`): every `eval_every` env
steps the agent plays `eval_episodes` deterministic episodes on a separate env, the scores go
into metrics.csv / TensorBoard as `eval/…`, and the best agent so far is kept in `best.pt`.

Seeds: every evaluation plays the same episodes (seeds EVAL_SEED + 1000·run seed + k), so its
scores compare across the run; training resets use the run seed plus an episode count, far
below EVAL_SEED, so the two never share an episode.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from robustrl.agents.base import Agent
from robustrl.core.errors import RobustRLError
from robustrl.train.evaluation import evaluate

EVAL_SEED = 1 << 30
KEY = "eval/return_mean"


def check_eval(every: int, episodes: int) -> None:
    if every < 0 or (every > 0 and episodes < 1):
        raise RobustRLError(f"run.eval_every must be >= 0 and run.eval_episodes >= 1, got "
                            f"{every} and {episodes}")


class PeriodicEval:
    def __init__(self, out: str | Path, every: int, episodes: int, seed: int,
                 rows: list[dict[str, Any]] = (), start: int = 0):
        """`rows`: metrics.csv rows already logged (a resumed run), read for the best score;
        `start`: the step training starts from."""
        check_eval(every, episodes)
        self.path = Path(out) / "best.pt"
        self.every, self.episodes = every, episodes
        self.seed = EVAL_SEED + 1000 * seed
        scores = [float(r[KEY]) for r in rows if r.get(KEY) not in (None, "")]
        self.best = max(scores, default=-math.inf)
        self.next = (start // every + 1) * every if every else 0
        self.last: int | None = None

    def __call__(self, agent: Agent) -> dict[str, float]:
        """The eval metrics to log with this log event ({} when no evaluation is due)."""
        if not self.every or agent.num_steps < self.next:
            return {}
        return self.evaluate(agent)

    def final(self, agent: Agent) -> dict[str, float]:
        """At the end of training: evaluate the final agent unless that was just done."""
        if not self.every or self.last == agent.num_steps:
            return {}
        return self.evaluate(agent)

    def evaluate(self, agent: Agent) -> dict[str, float]:
        result = evaluate(agent, self.episodes, seed=self.seed)
        self.next = (agent.num_steps // self.every + 1) * self.every
        self.last = agent.num_steps
        if result["return_mean"] > self.best or not self.path.exists():
            self.best = max(self.best, result["return_mean"])
            agent.save(self.path)  # atomic: temp file + rename
        return {KEY: result["return_mean"], "eval/return_std": result["return_std"],
                "eval/length_mean": result["length_mean"], "eval/best_return": self.best}


__all__ = ["EVAL_SEED", "PeriodicEval", "check_eval"]
