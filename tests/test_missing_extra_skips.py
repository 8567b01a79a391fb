"""conftest.py: a test that reaches an extra that is not installed is skipped, not failed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_missing_extra_error_is_reported_as_a_skip_with_its_message(tmp_path):
    (tmp_path / "test_needs_extra.py").write_text(
        "from robustrl.core.errors import MissingExtraError, RobustRLError\n"
        "def test_needs_mpe():\n"
        "    raise MissingExtraError(\"needs 'mpe2'; pip install 'robustrl[mpe]'\")\n"
        "def test_other_errors_still_fail():\n"
        "    raise RobustRLError('a real failure')\n")
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-rs", "-q",
                          "-p", "no:cacheprovider", str(tmp_path)], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=120)
    assert "1 failed, 1 skipped" in out.stdout, out.stdout
    assert "pip install 'robustrl[mpe]'" in out.stdout
