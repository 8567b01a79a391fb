"""experiments/check_results.py recomputes the published numbers from committed raw data."""

import importlib.util
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("check_results",
                                                  ROOT / "experiments" / "check_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_backed_number_recomputes(capsys):
    assert _module().main() == 0
    out = capsys.readouterr().out
    assert " 0 mismatches" in out and "ernie/results/ernie_mujoco" in out


def test_a_changed_number_is_caught(tmp_path):
    check = _module()
    name = "ernie_traffic_2x2grid_v1"
    folder = tmp_path / name
    shutil.copytree(ROOT / "experiments" / "ernie" / "results" / name, folder)
    lines = (folder / "episodes.csv").read_text().splitlines()
    head, first = lines[0].split(","), lines[1].split(",")
    i = head.index("return")
    first[i] = str(float(first[i]) + 1.0)  # one episode's return off by one
    (folder / "episodes.csv").write_text("\n".join([lines[0], ",".join(first), *lines[2:]]))
    c = check.Checker()
    check.check_bench_report(folder, c)
    assert c.checked > 50 and c.errors and all(name in e for e in c.errors)
