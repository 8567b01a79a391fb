"""A small generated UMaze dataset shared by the offline tests (datasets, learners, runs)."""

from __future__ import annotations

import pytest

from robustrl.data.generate import GenerateConfig, generate_dataset

UMAZE = "maze/PointMaze_UMaze-v3"


@pytest.fixture(scope="session")
def umaze(tmp_path_factory):
    """A 10k-step generated UMaze dataset (about 2 s)."""
    path = tmp_path_factory.mktemp("data") / "umaze.npz"
    generate_dataset(UMAZE, GenerateConfig(steps=10_000, seed=0, ref_episodes=5), out=path,
                     show_progress=False)
    return path
