"""Recording evaluation episodes as mp4 files (`robustrl eval RUN --video DIR`).

Gymnasium envs go through `gymnasium.wrappers.RecordVideo`; a PettingZoo ParallelEnv has no such
wrapper, so `ParallelRecorder` collects its rgb_array frames and writes them the same way
(moviepy, as RecordVideo does). Both need the env made with render_mode="rgb_array".

Headless MuJoCo: with no display, MuJoCo needs an off-screen GL backend chosen before it is
imported: MUJOCO_GL=egl (GPU or Mesa EGL, the default picked here) or MUJOCO_GL=osmesa (pure
software, slower).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gymnasium as gym

from robustrl.core.errors import RobustRLError

HEADLESS_HINT = ("with no display MuJoCo renders through MUJOCO_GL=egl (GPU or Mesa EGL) or "
                 "MUJOCO_GL=osmesa (software); set one before running")


def prepare_headless() -> None:
    """Pick EGL for MuJoCo when there is no display and the user chose no backend."""
    if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


def _check_moviepy() -> None:
    try:
        import moviepy  # noqa: F401
    except ImportError:
        raise RobustRLError("recording video needs moviepy: pip install robustrl[video]") from None


def write_mp4(frames: list[Any], path: Path, fps: float) -> None:
    """Write `frames` (H×W×3 uint8) to `path` atomically (temp file + rename)."""
    from moviepy.video.io.ImageSequenceClip import ImageSequenceClip

    tmp = path.with_name(f".{path.stem}.tmp.mp4")
    ImageSequenceClip(list(frames), fps=fps).write_videofile(str(tmp), logger=None)
    os.replace(tmp, path)


class ParallelRecorder:
    """A PettingZoo ParallelEnv that writes each episode to DIR/PREFIX-episode-K.mp4."""

    def __init__(self, env: Any, directory: Path, prefix: str, fps: float):
        self.env, self.directory, self.prefix, self.fps = env, directory, prefix, fps
        self.frames: list[Any] = []
        self.episode = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def reset(self, seed: int | None = None, options: dict | None = None) -> Any:
        self._write()
        out = self.env.reset(seed=seed, options=options)
        self.frames = [self.env.render()]
        return out

    def step(self, actions: dict[str, Any]) -> Any:
        out = self.env.step(actions)
        self.frames.append(self.env.render())
        if not self.env.agents:
            self._write()
        return out

    def close(self) -> None:
        self._write()
        self.env.close()

    def _write(self) -> None:
        if self.frames:
            write_mp4(self.frames, self.directory / f"{self.prefix}-episode-{self.episode}.mp4",
                      self.fps)
            self.episode += 1
            self.frames = []


def record(env: Any, directory: str | Path, prefix: str) -> Any:
    """`env` (made with render_mode="rgb_array") recording every episode into `directory`."""
    _check_moviepy()
    directory = Path(directory)
    base = getattr(env, "unwrapped", env)  # probe below the perturbations: their RNGs untouched
    try:  # fail here, in one line, when this machine cannot render the env
        base.reset(seed=0)
        frame = base.render()
    except RobustRLError:
        raise
    except Exception as e:  # GL backends fail in many ways (FatalError, GLError, ImportError)
        env.close()
        raise RobustRLError(f"cannot render {prefix} ({type(e).__name__}: {e}); "
                            f"{HEADLESS_HINT}") from None
    if frame is None:
        env.close()
        raise RobustRLError(f"{prefix} renders no rgb_array frames; it cannot be recorded")
    directory.mkdir(parents=True, exist_ok=True)
    fps = float((getattr(env, "metadata", None) or {}).get("render_fps") or 30)
    if hasattr(env, "possible_agents"):
        return ParallelRecorder(env, directory, prefix, fps)
    return gym.wrappers.RecordVideo(env, str(directory), episode_trigger=lambda _: True,
                                    name_prefix=prefix, fps=int(fps), disable_logger=True)


__all__ = ["HEADLESS_HINT", "ParallelRecorder", "prepare_headless", "record", "write_mp4"]
