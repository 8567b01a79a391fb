"""`robustrl envs` and `robustrl perturbations`: complete, and within a 100-column terminal."""

from __future__ import annotations

import pytest

from robustrl import envs
from robustrl.cli import build_parser, main
from robustrl.cli.listing import WIDTH, brief_space
from robustrl.perturb.spec import KINDS, strength_range


def test_envs_lists_every_id_with_its_spaces_within_100_columns(capsys):
    assert main(["envs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= WIDTH
    rows = {line.split()[0]: line.split() for line in lines
            if "/" in line.split(" ")[0] and not line.startswith("`")}
    assert set(rows) == set(envs.list_envs())
    for env_id, cells in rows.items():
        assert cells[2] not in ("-", "?") and cells[3] not in ("-", "?"), env_id


@pytest.mark.parametrize("env_id", [i for i in envs.list_envs() if i.startswith("gym/")])
def test_declared_gym_spaces_match_the_env(env_id):
    env, spec = envs.make(env_id), envs.spec(env_id)
    assert " ".join(str(env.observation_space).split()) == spec.observation_space
    assert str(env.action_space) == spec.action_space


def test_envs_show_prints_full_spaces_also_for_unlisted_gym_ids(capsys):
    assert main(["envs", "show", "gym/MountainCar-v0"]) == 0  # open family: made to find out
    out = capsys.readouterr().out
    assert "observation space: Box([-1.2" in out and "action space: Discrete(3)" in out


def test_brief_space():
    assert brief_space("Box(-inf, inf, (17,), float64)") == "Box(17)"
    assert brief_space("Box([-1. -8.], [1. 8.], (2,), float32)") == "Box(2)"
    assert brief_space("Box(0, 255, (64, 64, 3), uint8)") == "Box(64x64x3)"
    assert brief_space("Dict('goal': Box(-inf, inf, (2,), float64))") == "Dict(goal:Box(2))"


def test_perturbations_lists_every_kind_with_range_unit_and_options(capsys):
    assert main(["perturbations"]) == 0
    out = capsys.readouterr().out
    assert max(map(len, out.splitlines())) <= WIDTH
    blocks = {b.splitlines()[0]: b for b in out.split("\n\n")}
    for kind, info in KINDS.items():
        block = blocks[kind]
        assert f"strength: {strength_range(kind)}; unit: " in " ".join(block.split()), kind
        assert info.units, kind
        for key in info.options:
            if key not in ("start", "prob"):
                assert f"{key}=<" in block, (kind, key)
    assert "start=<integer >= 0>" in out and "prob=<number [0, 1]>" in out


def test_eval_help_points_to_a_command_that_exists():
    parser = build_parser(reward_commands=False)
    sub = next(a for a in parser._actions if a.dest == "command")
    help_text = sub.choices["eval"].format_help()
    assert "`robustrl perturbations`" in " ".join(help_text.split())
    assert "perturbations" in sub.choices and "--list-perturbations" not in help_text


def test_core_install_lists_everything_without_any_extra():
    """With every extra's packages absent, the library imports and the listings work (they
    read the TOML specs); making a family's env is what needs its extra."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for name in ('mpe2', 'gymnasium_robotics', 'sumo', 'sumo_rl', 'libsumo', 'traci', "
        "'ray', 'transformers', 'sentence_transformers', 'stable_baselines3', 'optuna', "
        "'wandb'):\n    sys.modules[name] = None\n"
        "import robustrl.agents, robustrl.bench, robustrl.perturb, robustrl.reward, "
        "robustrl.train\n"
        "from robustrl.cli import main\n"
        "assert main(['envs']) == 0 and main(['perturbations']) == 0 and main(['agents']) == 0\n"
        "assert main(['envs', 'show', 'maze/PointMaze_UMaze-v3']) == 0\n"
        "sys.exit(main(['envs', 'check', 'mpe/simple_spread']))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2, out.stderr
    assert "needs: pip install 'robustrl[maze]'" in out.stdout
    assert out.stderr.endswith("pip install 'robustrl[mpe]'\n") and out.stderr.count("\n") == 1
