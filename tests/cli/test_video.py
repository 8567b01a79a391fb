"""`robustrl eval RUN --video DIR`: every episode recorded as mp4, for a PettingZoo particle
world (frames collected by robustrl) and headless MuJoCo (gymnasium's RecordVideo, EGL)."""

import os
import subprocess
import sys

import pytest

from robustrl.cli import main
from robustrl.train import build_run, train

imageio = pytest.importorskip("imageio.v3")
pytest.importorskip("moviepy", reason="video needs moviepy (robustrl[video])")


def _frames(path):
    return imageio.imread(path)  # (frames, height, width, 3)


def test_particle_world_video(tmp_path, capsys):
    run = tmp_path / "spread"
    train(build_run("mappo", "mpe/simple_spread", 100, overrides={
        "hidden": [32, 32], "n_envs": 1, "n_steps": 50, "env.max_cycles": 15,
        "run.tensorboard": False}), run, show_progress=False)
    try:
        code = main(["eval", str(run), "--episodes", "2", "--video", str(tmp_path / "v"),
                     "--perturb", "obs-gaussian:0.1"])
    except Exception as e:  # pragma: no cover - depends on the machine's pygame
        pytest.skip(f"mpe2 cannot render here: {e}")
    assert code == 0, capsys.readouterr().err
    videos = sorted((tmp_path / "v").glob("*.mp4"))
    assert [v.name for v in videos] == ["mpe-simple_spread-episode-0.mp4",
                                        "mpe-simple_spread-episode-1.mp4"]
    frames = _frames(videos[0])
    assert frames.shape[0] == 16 and frames.shape[-1] == 3  # reset + 15 steps
    assert frames.std() > 0  # a real picture, not a blank frame
    # recording changes nothing: the same episodes as without video
    from robustrl.train import evaluate_run

    plain = evaluate_run(run, 2, ["obs-gaussian:0.1"])
    filmed = evaluate_run(run, 2, ["obs-gaussian:0.1"], video=tmp_path / "v2")
    assert filmed["returns"] == plain["returns"]


@pytest.mark.slow  # a fresh interpreter importing torch and MuJoCo: 15-30 s on 2 cores
def test_mujoco_headless_video(tmp_path):
    run = tmp_path / "pendulum"
    train(build_run("ppo", "mujoco/InvertedPendulum-v5", 100, overrides={
        "n_envs": 1, "n_steps": 50, "run.tensorboard": False}), run, show_progress=False)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MUJOCO_GL")}
    # a fresh process: MuJoCo's GL backend is chosen when mujoco is first imported
    proc = subprocess.run([sys.executable, "-m", "robustrl.cli", "eval", str(run),
                           "--episodes", "1", "--video", str(tmp_path / "v")],
                          capture_output=True, text=True, env=env, timeout=300)
    if proc.returncode == 2 and "cannot render" in proc.stderr:
        pytest.skip(f"no off-screen GL on this machine: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    videos = list((tmp_path / "v").glob("mujoco-InvertedPendulum-v5-episode-0*.mp4"))
    assert len(videos) == 1
    frames = _frames(videos[0])
    assert frames.shape[1:] == (480, 480, 3) and frames.std() > 0


def test_video_needs_a_renderable_env_id(tmp_path, capsys):
    import gymnasium as gym

    from robustrl.agents import make_agent
    from robustrl.core.errors import RobustRLError
    from robustrl.train.run_eval import evaluate_agent

    agent = make_agent("ppo", lambda: gym.make("CartPole-v1"))
    with pytest.raises(RobustRLError, match="--video needs"):
        evaluate_agent(agent, 1, video=tmp_path / "v")
