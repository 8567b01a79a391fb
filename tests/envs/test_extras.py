"""A family whose extra is not installed stops with one line naming the extra to install."""

from __future__ import annotations

import subprocess
import sys

import pytest

from robustrl import envs
from robustrl.core.errors import MissingExtraError


@pytest.mark.parametrize("env_id, module, package, extra", [
    ("mpe/simple_spread", "robustrl.envs.mpe", "mpe2", "robustrl[mpe]"),
    ("maze/PointMaze_UMaze-v3", "robustrl.envs.maze", "gymnasium_robotics", "robustrl[maze]"),
])
def test_family_without_its_extra_names_the_extra(monkeypatch, env_id, module, package, extra):
    monkeypatch.setitem(sys.modules, package, None)  # as if not installed: import fails
    monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(MissingExtraError) as err:
        envs.make(env_id)
    assert str(err.value) == (f"{env_id} needs the missing package '{package}'; "
                              f"pip install '{extra}'")


def test_traffic_without_sumo_names_the_extra():
    # load_sumo_rl is cached per process and SUMO may already be loaded here: a fresh one.
    code = ("import sys; sys.modules['sumo'] = None\n"
            "from robustrl.cli import main\n"
            "sys.exit(main(['envs', 'check', 'traffic/single-intersection']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("robustrl: error: traffic envs need SUMO, which is not installed;")
    assert out.stderr.count("\n") == 1 and "pip install 'robustrl[traffic]'" in out.stderr
