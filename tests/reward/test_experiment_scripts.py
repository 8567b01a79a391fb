"""experiments/reward scripts stop with one line naming the missing data and its source."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "experiments" / "reward"


@pytest.mark.parametrize("script, missing, source", [
    ("text_rm.py", "hh_rlhf_harmless_base_test.jsonl.gz", "github.com/anthropics/hh-rlhf"),
    ("pandalm_disagreement.py", "pandalm_testset_v1.json.gz", "github.com/WeOpenML/PandaLM"),
])
def test_absent_preference_data_is_one_line(tmp_path, script, missing, source):
    env = {**os.environ, "ROBUSTRL_PREFS": str(tmp_path / "none")}
    out = subprocess.run([sys.executable, str(SCRIPTS / script)], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and out.stderr.startswith(f"missing {tmp_path}")
    assert missing in out.stderr and source in out.stderr
