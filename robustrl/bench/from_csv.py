"""A results database rebuilt from its per-episode export (`robustrl bench export DB`), so a
report can be produced from the raw rows committed next to a result:

    robustrl bench report experiments/ernie/results/ernie_mujoco/episodes.csv --out DIR

The export keeps every episode row (and so every cell's return). The `runs` table (each run's
Lipschitz estimate, steps, training time) is read from a `runs.csv` beside it when there is
one (`robustrl bench export DB --table runs --out DIR/runs.csv`); without it the report has no
Lipschitz column. Learning curves need the run directories, not kept by either export.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from robustrl.bench.store import EPISODE_COLUMNS, SCHEMA_VERSION, connect
from robustrl.core.errors import RobustRLError


def database_from_episodes(episodes: str | Path, db: str | Path) -> Path:
    """Write a results database at `db` (a new file) holding the rows of `episodes`."""
    episodes, db = Path(episodes), Path(db)
    if not episodes.is_file():
        raise RobustRLError(f"episodes export {episodes} not found")
    if db.exists():
        raise RobustRLError(f"{db} exists; rebuild into a new file")
    with episodes.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = set(EPISODE_COLUMNS) - set(reader.fieldnames or [])
        if missing:
            raise RobustRLError(f"{episodes} is not an episodes export of a results database "
                                f"(no column {', '.join(sorted(missing))})")
        rows = list(reader)
    if not rows:
        raise RobustRLError(f"{episodes} holds no episodes")
    suites = {(r["suite"], r["suite_hash"]) for r in rows}
    if len(suites) != 1:
        raise RobustRLError(f"{episodes} mixes suites {sorted(suites)}; report one at a time")
    (suite, suite_hash), = suites
    runs = _runs(episodes.with_name("runs.csv"), {r["run"] for r in rows})
    cells: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        cells[r["config_hash"]].append(r)
    conn = connect(db)
    try:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO meta VALUES (?, ?)", [
            ("schema_version", SCHEMA_VERSION), ("suite", suite), ("suite_hash", suite_hash)])
        conn.executemany(
            f"INSERT INTO episodes VALUES ({', '.join('?' * len(EPISODE_COLUMNS))})",
            [tuple(_value(k, r[k]) for k in EPISODE_COLUMNS) for r in rows])
        for key, eps in cells.items():
            r = eps[0]
            conn.execute("INSERT INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (
                key, r["run"], r["agent"], r["env"], int(r["seed"]), r["perturbation"],
                r["spec"], _value("strength", r["strength"]), len(eps),
                sum(float(e["return"]) for e in eps) / len(eps), 0.0, ""))
        conn.executemany(f"INSERT INTO runs VALUES ({', '.join('?' * len(RUN_COLUMNS))})",
                         [tuple(_value(k, r[k]) for k in RUN_COLUMNS) for r in runs])
        conn.execute("COMMIT")
    finally:
        conn.close()
    return db


RUN_COLUMNS = ("run", "agent", "env", "seed", "run_dir", "steps", "lipschitz", "lipschitz_eps",
               "train_seconds")


def _runs(path: Path, episode_runs: set[str]) -> list[dict[str, str]]:
    """The rows of a runs export beside the episodes ([] when there is none); it must describe
    exactly the runs the episodes come from, or the two files are from different databases."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = set(RUN_COLUMNS) - set(reader.fieldnames or [])
        if missing:
            raise RobustRLError(f"{path} is not a runs export of a results database (no column "
                                f"{', '.join(sorted(missing))}); rewrite it with `robustrl bench "
                                "export DB --table runs`")
        rows = list(reader)
    if {r["run"] for r in rows} != episode_runs:
        raise RobustRLError(f"{path} and the episodes beside it list different runs; export both "
                            "from the same database")
    return rows


def _value(column: str, text: str) -> object:
    if column in ("seed", "episode", "eval_seed", "length", "steps"):
        return int(text)
    if column in ("strength", "return", "lipschitz", "lipschitz_eps", "train_seconds"):
        return float(text) if text != "" else None
    return text
