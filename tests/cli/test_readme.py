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


# -- "What the commands write": every path the README names exists after the command -------------

TINY_SUITE = """
name = "readme"
seeds = [0]
episodes = 1
lipschitz_obs = 16

[[train]]
agents = ["ppo"]
envs = ["gym/CartPole-v1"]
steps = 128
set = { n_envs = 1, n_steps = 64, n_epochs = 1, hidden = [16], "env.max_episode_steps" = 20 }

[[perturbations]]
spec = "obs-gaussian"
strengths = [0.1]
"""


def outputs_table() -> dict[str, list[str]]:
    """README's outputs table: command -> the paths it names (in backticks)."""
    body = README.split("### What the commands write\n", 1)[1].split("\n#", 1)[0]
    rows = [line.split("|")[1:3] for line in body.splitlines() if line.startswith("| `")]
    return {cmd.strip().strip("`"): re.findall(r"`([^`]+)`", paths) for cmd, paths in rows}


def assert_written(paths: list[str], **dirs: Path) -> None:
    """Each path (`RUN/metrics.csv`, `OUT/report/<env>.png`) exists under the folder its
    first part names."""
    assert paths
    for path in paths:
        head, _, rest = path.partition("/")
        assert head in dirs, f"README path {path} starts with none of {sorted(dirs)}"
        full = dirs[head] / rest
        if "<env>" in rest:
            assert list(full.parent.glob(full.name.replace("<env>", "*"))), path
        else:
            assert full.exists(), path


def test_readme_output_paths_exist_after_the_commands(tmp_path, capsys):
    from robustrl.cli import main

    table = outputs_table()
    assert set(table) == {
        "robustrl train ... --out RUN", "robustrl quickstart --out RUN",
        "robustrl bench SUITE.toml --out OUT", "robustrl bench report OUT/results.sqlite",
        "robustrl bench export OUT/results.sqlite"}, "a new README row needs a run here"

    run = tmp_path / "run"
    assert main(["train", "--agent", "ppo", "--env", "gym/CartPole-v1", "--steps", "128",
                 "--out", str(run), "--set", "n_steps=64", "--set", "run.checkpoint_every=64"]) == 0
    assert_written(table["robustrl train ... --out RUN"], RUN=run)

    quick = tmp_path / "quick"
    assert main(["quickstart", "--out", str(quick), "--steps", "2048", "--episodes", "1"]) == 0
    paths = table["robustrl quickstart --out RUN"]
    assert paths[:3] == ["RUN/results.md", "RUN/results.json", "RUN/quickstart.png"]
    assert_written(paths + table["robustrl train ... --out RUN"], RUN=quick)

    suite, out = tmp_path / "readme.toml", tmp_path / "bench"
    suite.write_text(TINY_SUITE)
    assert main(["bench", str(suite), "--out", str(out), "--workers", "1"]) == 0
    assert_written(table["robustrl bench SUITE.toml --out OUT"], OUT=out)
    assert main(["bench", "report", str(out / "results.sqlite")]) == 0
    assert_written(table["robustrl bench report OUT/results.sqlite"], OUT=out)
    assert main(["bench", "export", str(out / "results.sqlite")]) == 0
    assert_written(table["robustrl bench export OUT/results.sqlite"], OUT=out)
