"""The README's custom-environment examples run as written, and the agents learn on them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def python_blocks(heading: str) -> list[str]:
    """The ```python blocks between `heading` and the next heading of any level."""
    body = re.split(r"\n#{2,} ", README.split(heading + "\n", 1)[1], maxsplit=1)[0]
    return re.findall(r"```python\n(.*?)```", body, re.S)


def random_team_return(env_id: str, episodes: int = 20) -> float:
    from robustrl import envs

    env, totals = envs.make(env_id), []
    for ep in range(episodes):
        env.reset(seed=ep)
        total = 0.0
        while env.agents:
            actions = {a: env.action_space(a).sample() for a in env.agents}
            total += sum(env.step(actions)[1].values())
        totals.append(total)
    return float(np.mean(totals))


@pytest.mark.learning
def test_custom_env_examples_register_train_and_learn():
    from robustrl import envs
    from robustrl.train import evaluate

    imports = "\n".join(line for line in python_blocks("## Library")[0].splitlines()
                        if line.startswith(("import ", "from ")))
    corridor, rendezvous = python_blocks("### Your own environments")
    namespace: dict = {}
    try:
        exec(imports, namespace)
        exec(corridor, namespace)
        assert namespace["agent"].num_steps == 2_000
        walk = evaluate(namespace["agent"], episodes=3)
        assert walk["length_mean"] <= 5  # reaches the goal at 3.0 in ~3 steps (time limit 50)

        exec(rendezvous, namespace)
        assert envs.spec("custom/Rendezvous-v0").ranking == ("gap", "effort")
        baseline = random_team_return("custom/Rendezvous-v0")
        assert namespace["result"]["return_mean"] > baseline / 2  # random ≈ -98, learned ≈ -13
    finally:
        for env_id in ("custom/Corridor-v0", "custom/Rendezvous-v0"):
            envs.registry._REGISTRY.pop(env_id, None)
