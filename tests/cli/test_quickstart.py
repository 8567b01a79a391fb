"""The quickstart table is a pure function of its per-episode CSV (issue 21 item 5)."""

import numpy as np

from robustrl.cli.quickstart import episode_rows, results_table, rows_to_csv, table_from_csv


def test_table_regenerates_from_the_episode_csv(tmp_path):
    rows = episode_rows("random", "none", "", [3.0, 7.5], 10_000)
    rows += episode_rows("ppo", "none", 0, [1000.0, 1000.0], 10_000)
    rows += episode_rows("ppo", "obs-pgd", 0, [100.0 / 3, 500.0], 10_000, "0.5")
    path = tmp_path / "episodes.csv"
    path.write_text(rows_to_csv(rows))
    text = table_from_csv(path)
    assert text == results_table(rows)
    lines = text.splitlines()
    assert lines[2].split()[:2] == ["random", "policy"] and lines[2].split()[-1] == "-"
    mean, std = np.mean([100.0 / 3, 500.0]), np.std([100.0 / 3, 500.0])
    assert f"{mean:.1f} ± {std:.1f}" in lines[4] and "obs-pgd:0.5" in lines[4]
    assert lines[4].split()[-1] == f"{mean / 1000:.2f}"
    assert [r["eval_seed"] for r in rows[:2]] == ["10000", "10001"]
