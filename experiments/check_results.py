"""Recompute the published numbers that have committed raw data, and fail on any mismatch.

    python experiments/check_results.py          # prints what it checked; exit 1 on a mismatch

What it checks (each from the raw rows committed next to the table):
- every bench report folder `experiments/*/results/*/` holding `episodes.csv` (the results
  database's per-episode export): its tables (report.md and the CSVs) are regenerated from
  the episodes (and the runs.csv beside them: Lipschitz) with `robustrl bench report
  FOLDER/episodes.csv --out FOLDER` and must be identical, line for line.
- `experiments/ernie/results/summary.md` against `experiments/ernie/summarize.py`'s output
  from those reports, and every decimal ernie.md quotes against summary.md;
  heron.md's simple_spread row and doubled-inflow quote from the HERON reports'
  (mean ± Student-t 95% CI over seeds, as heron.md states).
- `experiments/heron/results/heron_traffic*.md` from the `.csv` beside each (one row per
  evaluation episode; a table file without one must hold no table), and heron.md's 2x2 grid
  row and margin-sensitivity quote from `heron_traffic_2x2grid.csv`.
- `experiments/offline/results/intent_{medium,maze}.md` from `intent_{medium,maze}.csv`.
- `experiments/reward/results/text_finetune.md` from `text_finetune.csv`.
- `experiments/reward/results/synthetic.md` from `synthetic.csv` and `pandalm.md` from
  `pandalm.csv`; `text.md` from `text.csv` and `rl_from_preferences.md` from
  `rl_from_preferences_{runs,episodes}.csv` once those are committed (until then those two
  files must hold no table).
- `experiments/multiagent/results/multiagent.md` from `multiagent.csv` (MAPPO, IDQN, mfq
  learning checks and their random / fixed-time references, per episode).
- `experiments/offline/results/umaze_iql.md` from `umaze_iql.csv` (UMaze IQL vs random,
  per episode).
- `experiments/hybrid_sac/results/hybrid_sac.md` from `hybrid_sac.csv` (every table cell and
  learning-curve point; then the whole file against the script's `render` of the CSV).
- `experiments/robustness/results/quickstart.md`'s table from `quickstart_episodes.csv`.
- `experiments/perf/results/ernie_overhead.md` from `ernie_overhead.csv` (one row per timed
  run: every median, ratio, the K = 1 target line, load range and timed total; then the whole
  file against the script's `render` of the CSV).
- `experiments/perf/results/learning_parity_<algo>.md` from its .csv (robustrl PPO vs SB3 PPO
  on HalfCheetah-v5, SAC vs SB3 SAC on Hopper-v5, one row per eval episode: each side's
  final-return IQM, CI, mean, per-seed finals, train seconds, P(robustrl > SB3), every
  learning-curve cell and the load range; then the whole file against the script's `render`
  of the CSV).
- `experiments/perf/results/speed.md`'s traffic-adapter, particle-world / maze / hybrid
  adapter and bench-workers rows from `env_speed_traffic.csv`, `env_speed_mpe_maze.csv` and
  `bench_workers_speedup.csv` (one row per timed run; the run the cell names: every steps/s,
  overhead, wall time, ratio and load range, then the cell against the script's `cell`; a
  row without raw rows must hold no number), and `ray_overhead.md` from `ray_overhead.csv`
  (every table cell, then the whole file against the script's `render`).
Tables not listed here have no committed raw data; their files say so.
"""

from __future__ import annotations

import csv
import math
import re
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
TABLES = ("report.md", "curves.csv", "summary.csv", "aggregates.csv", "improvements.csv")
NUMBER = re.compile(r"-?\d+\.\d+|-?\d+")
T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _ci95(values: list[float]) -> float:
    n = len(values)
    return 0.0 if n < 2 else T95[n - 2] * float(np.std(values, ddof=1)) / math.sqrt(n)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


class Checker:
    def __init__(self) -> None:
        self.checked = 0
        self.errors: list[str] = []

    def same(self, where: str, published: float | str, recomputed: float | str | bool) -> None:
        """Text (a table cell) must match exactly, numbers (a CSV value) to float precision."""
        self.checked += 1
        ok = (published == recomputed if isinstance(recomputed, str | bool)
              else _close(float(published), float(recomputed)))
        if not ok:
            self.errors.append(f"{where}: published {published}, recomputed {recomputed}")


def per_seed(folder: Path) -> dict[tuple, list[float]]:
    """(env, agent, perturbation, strength) -> each seed's mean episode return, seed order."""
    cells: dict[tuple, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in _rows(folder / "episodes.csv"):
        strength = float(r["strength"]) if r["strength"] else None
        cells[(r["env"], r["agent"], r["perturbation"], strength)][int(r["seed"])].append(
            float(r["return"]))
    return {k: [float(np.mean(v[s])) for s in sorted(v)] for k, v in cells.items()}


def check_bench_report(folder: Path, c: Checker) -> None:
    """A bench report folder: its tables regenerated from its episodes.csv must be identical
    (`robustrl bench report FOLDER/episodes.csv --out FOLDER` wrote them)."""
    from robustrl.bench import report

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(folder / "episodes.csv", Path(tmp) / "episodes.csv")
        runs = (folder / "runs.csv").is_file()
        if runs:  # the Lipschitz column's raw rows
            shutil.copyfile(folder / "runs.csv", Path(tmp) / "runs.csv")
        report(Path(tmp) / "episodes.csv", tmp, plots=False)
        for name in TABLES + (("runs.csv",) if runs else ()):
            published = (folder / name).read_text().splitlines()
            fresh = (Path(tmp) / name).read_text().splitlines()
            if len(published) != len(fresh):
                c.same(f"{folder.name}/{name} rows", len(published), len(fresh))
            for i, (a, b) in enumerate(zip(published, fresh)):
                c.checked += len(NUMBER.findall(a)) - 1  # `same` counts one more
                c.same(f"{folder.name}/{name} line {i + 1}", a, b)


def _num(x: float, digits: int) -> str:
    return f"{x:.{digits}f}".replace("-", "−")


class Report:
    """One v1 bench report's statistics, recomputed from its episodes.csv."""

    def __init__(self, folder: Path):
        self.seeds = per_seed(folder)

    def _values(self, agent: str, pert: str, strength: float | None) -> list[float]:
        return next(v for (e, a, p, s), v in self.seeds.items()
                    if a == agent and p == pert and s == strength)

    def mean(self, agent: str, pert: str, strength: float | None = None) -> float:
        return float(np.mean(self._values(agent, pert, strength)))

    def mean_ci(self, agent: str, pert: str, strength: float | None, digits: int) -> str:
        v = self._values(agent, pert, strength)
        return f"{_num(float(np.mean(v)), digits)} ± {_ci95(v):.{digits}f}"


def check_ernie_summary(c: Checker) -> None:
    """experiments/ernie/results/summary.md must be what experiments/ernie/summarize.py writes
    from the (checked) ERNIE reports, and every number ernie.md quotes must be one of
    summary.md's (ernie.md's prose adds no number of its own)."""
    import importlib.util

    folder = ROOT / "ernie" / "results"
    spec = importlib.util.spec_from_file_location("summarize", ROOT / "ernie" / "summarize.py")
    summarize = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(summarize)
    published = (folder / "summary.md").read_text().splitlines()
    fresh = summarize.render().splitlines()
    c.same("ernie/results/summary.md rows", len(published), len(fresh))
    for i, (a, b) in enumerate(zip(published, fresh)):
        c.checked += len(NUMBER.findall(a)) - 1
        c.same(f"ernie/results/summary.md line {i + 1}", a, b)
    known = set(NUMBER.findall((folder / "summary.md").read_text().replace("−", "-")))
    text = (folder / "ernie.md").read_text().replace("−", "-")
    for number in re.findall(r"-?\d+\.\d+", text):  # decimals: results, not counts or ids
        c.same(f"ernie.md quotes {number}", number if number in known else "not in summary.md",
               number)


def check_heron_summary(c: Checker) -> None:
    """experiments/heron/results/heron.md: its simple_spread row and the robustness paragraph's
    doubled-inflow numbers, from the two HERON bench reports' episodes; its 2x2 grid row and
    margin sensitivity from heron_traffic_2x2grid.csv; its rows not rerun hold no number."""
    folder = ROOT / "heron" / "results"
    mpe, robust = Report(folder / "heron_mpe"), Report(folder / "heron_traffic_robustness")
    text = (folder / "heron.md").read_text()
    row = next(r for r in _table(text, "| setting | HERON") if r[0].startswith("`mpe/"))
    for cell, agent in zip(row[1:4], ("HERON", "env reward", "weighted, beta 0.5")):
        c.same(f"heron.md simple_spread {agent}", cell.replace("**", "").split(" (")[0],
               mpe.mean_ci(agent, "none", None, 1))
    quote = (f"({robust.mean_ci('HERON', 'dyn-inflow', 2.0, 1)} vs "
             f"{robust.mean_ci('engineered', 'dyn-inflow', 2.0, 1)})")
    c.same("heron.md doubled inflow", quote in " ".join(text.split()), True)
    grid = Traffic(folder / "heron_traffic_2x2grid.csv")
    rows = {r[0].split("`")[1]: r for r in _table(text, "| setting | HERON")}
    weighted = [m for m in grid.methods("learned") if m.startswith("weighted-")]
    best = min(weighted, key=grid.wait)
    row = rows["traffic/2x2grid"]
    for cell, method in zip(row[1:5], ("heron", "engineered", best, "rlhf")):
        c.same(f"heron.md 2x2 grid {method}", cell.replace("**", "").split(" (")[0],
               grid.cell(method))
        bold = min(("heron", "engineered", best, "rlhf"), key=grid.wait) == method
        c.same(f"heron.md 2x2 grid {method} bold (the lowest)", cell.startswith("**"), bold)
    c.same("heron.md 2x2 grid best β", row[3].split(" (")[-1], f"β={best[len('weighted-'):]})")
    c.same("heron.md 2x2 grid controllers", row[5].startswith(
        f"max-pressure {grid.controller('max-pressure', 'mean_waiting_time'):.2f}, fixed-time "
        f"{grid.controller('fixed-time', 'mean_waiting_time'):.2f} "), True)
    margins = ", ".join(f"σ = {s} → {grid.cell(m)} s" for s, m in
                        (("0", "heron-s0"), ("0.1", "heron"), ("0.5", "heron-s0.5")))
    c.same("heron.md margin sensitivity", margins in " ".join(text.split()), True)
    for setting in ("traffic/single-intersection", "mujoco/HalfCheetah-v5"):  # not rerun
        c.same(f"heron.md {setting} holds no number", " | ".join(rows[setting][1:5]),
               " | ".join(["–"] * 4))


class Traffic:
    """One HERON traffic table's raw rows (`heron_traffic*.csv`, one row per evaluation
    episode): per-seed means over the episodes, mean ± sample std over seeds."""

    def __init__(self, path: Path):
        self.rows = _rows(path)
        self.cells: dict[tuple[str, str], dict[int, list[dict[str, str]]]] = defaultdict(
            lambda: defaultdict(list))
        for r in self.rows:
            self.cells[(r["kind"], r["method"])][int(r["seed"] or -1)].append(r)

    def methods(self, kind: str) -> list[str]:
        return [m for k, m in self.cells if k == kind]

    def seeds(self, method: str, field: str) -> list[float]:
        runs = self.cells[("learned", method)]
        return [float(np.mean([float(r[field]) for r in runs[s]])) for s in sorted(runs)]

    def controller(self, name: str, field: str) -> float:
        return float(np.mean([float(r[field]) for r in self.cells[("controller", name)][-1]]))

    def wait(self, method: str) -> float:
        return float(np.mean(self.seeds(method, "mean_waiting_time")))

    def cell(self, method: str) -> str:
        return _mean_std(self.seeds(method, "mean_waiting_time"), 2)


def _traffic_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("heron_traffic",
                                                  ROOT / "heron" / "traffic.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_heron_traffic(c: Checker) -> None:
    """experiments/heron/results/heron_traffic*.md from the `.csv` beside each: every cell
    recomputed here, and the whole generated part (header, run facts, table) identical to
    what `traffic.py --from-csv` builds; a table file without a CSV must hold no table."""
    folder = ROOT / "heron" / "results"
    build = _traffic_module().table_from_rows
    for md in sorted(folder.glob("heron_traffic*.md")):
        text, path = md.read_text(), md.with_suffix(".csv")
        if not path.exists():
            c.same(f"{md.name}: a results table without raw rows", "| method |" in text, False)
            continue
        t = Traffic(path)
        table = f"experiments/heron/results/{md.name}"
        c.same(f"{md.name} generated part", text.startswith(build(t.rows, table)), True)
        ref = t.wait("engineered")
        rows = _table(text, "| method | seeds")
        c.same(f"{md.name} rows", len(rows), len(t.methods("learned")) + len(
            t.methods("controller")))
        for row in rows:
            name = row[0].removesuffix(" (controller)")
            if row[0].endswith("(controller)"):
                w = t.controller(name, "mean_waiting_time")
                cells = [("waiting", row[2], f"{w:.2f}"),
                         ("vs engineered", row[4], f"{(w - ref) / ref:+.0%}"),
                         ("throughput", row[5], f"{t.controller(name, 'throughput'):.0f}"),
                         ("return", row[6], f"{t.controller(name, 'mean_return'):.2f}")]
            else:
                w_seeds = t.seeds(name, "mean_waiting_time")
                cells = list(zip(
                    ("seeds", "waiting", "per seed", "vs engineered", "throughput", "return"),
                    row[1:7],
                    (str(len(w_seeds)), t.cell(name), " / ".join(f"{x:.2f}" for x in w_seeds),
                     f"{(t.wait(name) - ref) / ref:+.0%}",
                     _mean_std(t.seeds(name, "throughput"), 0),
                     _mean_std(t.seeds(name, "mean_return"), 2))))
            for what, a, b in cells:
                c.same(f"{md.name} {row[0]} {what}", a, b)


def _table(text: str, header_start: str) -> list[list[str]]:
    """The rows (cells stripped; `\\|` kept as content) of the Markdown table whose header
    begins `header_start`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])  # an escaped pipe is content
        rows.append([x.strip().replace("\\|", "|") for x in cells])
    return rows


def _mean_std(values: list[float], digits: int = 1) -> str:
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return f"{np.mean(values):.{digits}f} ± {std:.{digits}f}"


def check_intent(c: Checker) -> None:
    folder = ROOT / "offline" / "results"
    runs: dict[tuple, dict[int, dict[str, str]]] = defaultdict(dict)
    for name in ("intent_medium", "intent_maze"):
        for r in _rows(folder / f"{name}.csv"):
            runs[(name, r["env"].split("/")[1], r["agent"], int(r["intent_k"]))][
                int(r["seed"])] = r
    score = {k: [float(v[s]["normalized_score"]) for s in sorted(v)] for k, v in runs.items()}
    success = {k: [float(v[s]["success"]) for s in sorted(v)] for k, v in runs.items()}
    medium = (folder / "intent_medium.md").read_text()
    columns = [0, 10, 25, 50]
    for row in _table(medium, "| worker | alone | intent k=10"):
        agent, what = row[0].split(" ", 1)
        for k, cell in zip(columns, row[1:]):
            key = ("intent_medium", "PointMaze_Medium-v3", agent, k)
            value = _mean_std(score[key]) if what == "normalized score" else \
                f"{np.mean(success[key]):.2f}"
            c.same(f"intent_medium.md {agent} {what} k={k}", cell, value)
    for row in _table(medium, "| worker | k | seed 0"):
        k = 0 if row[1] == "alone" else int(row[1])
        key = ("intent_medium", "PointMaze_Medium-v3", row[0], k)
        c.same(f"intent_medium.md per-seed {row[0]} k={k}", " / ".join(row[2:]),
               " / ".join(f"{x:.1f}" for x in score[key]))
    maze = (folder / "intent_maze.md").read_text()
    for row in _table(maze, "| env | worker | alone | intent k=50"):
        for k, cell in zip((0, 50), row[2:]):
            key = ("intent_maze", row[0], row[1], k)
            c.same(f"intent_maze.md {row[0]} {row[1]} k={k}", cell,
                   f"{_mean_std(score[key])} ({np.mean(success[key]):.2f})")
    for row in _table(maze, "| maze | worker | alone: seed"):
        for k, cell in zip((0, 50), row[2:4]):
            key = ("intent_maze", f"PointMaze_{row[0]}-v3", row[1], k)
            c.same(f"intent_maze.md per-seed {row[0]} {row[1]} k={k}", cell,
                   " / ".join(f"{x:.1f}" for x in score[key]))


def check_text_finetune(c: Checker) -> None:
    folder = ROOT / "reward" / "results"
    runs: dict[tuple, list[dict[str, str]]] = defaultdict(list)
    for r in _rows(folder / "text_finetune.csv"):
        runs[(r["data"], r["method"])].append(r)
    text = (folder / "text_finetune.md").read_text()
    for row in _table(text, "| data | method | held-out accuracy"):
        data, method = row[0], row[1]
        if method == "length baseline":
            rs = runs[next(k for k in runs if k[0] == data)]
            c.same(f"text_finetune.md {data} length baseline", row[2],
                   _mean_std([float(r["length_baseline"]) for r in rs], 3))
            continue
        rs = runs[(data, method)]
        c.same(f"text_finetune.md {data} {method} accuracy", row[2],
               _mean_std([float(r["accuracy"]) for r in rs], 3))
        c.same(f"text_finetune.md {data} {method} train accuracy", row[3],
               _mean_std([float(r["train_accuracy"]) for r in rs], 3))
        c.same(f"text_finetune.md {data} {method} seeds", row[5], str(len(rs)))


REWARD = ROOT / "reward" / "results"


def _floats(rows: list[dict[str, str]], field: str, order: str = "seed") -> list[float]:
    return [float(r[field]) for r in sorted(rows, key=lambda r: int(r[order] or 0))]


def _no_table(c: Checker, name: str, header_start: str) -> None:
    """A results file whose raw rows are not committed must publish no table."""
    text = (REWARD / name).read_text()
    c.same(f"{name}: no table without its raw rows", any(
        line.startswith(header_start) for line in text.splitlines()), False)


def check_reward_synthetic(c: Checker) -> None:
    """experiments/reward/results/synthetic.md from synthetic.csv (per fit)."""
    rows = _rows(REWARD / "synthetic.csv")
    text = (REWARD / "synthetic.md").read_text()

    def sel(part: str, truth: str, labels: str, method: str, lam: str) -> list[dict]:
        out = [r for r in rows if (r["part"], r["truth"], r["labels"], r["method"], r["lam"])
               == (part, truth, labels, method, lam)]
        return sorted(out, key=lambda r: (int(r["seed"]), int(r["repeat"] or 0)))

    seeds = sorted({int(r["seed"]) for r in rows if r["part"] == "accuracy"})
    c.same("synthetic.md seeds", f"over {len(seeds)} seeds" in text, True)
    main = _table(text, "| truth | labels | corrupted")
    c.same("synthetic.md main rows", len(main), 6)
    for truth, labels, corrupted, bt_acc, r3m_acc, gain, prec, rec in main:
        bt = sel("accuracy", truth, labels, "bt", "")
        r3m = sel("accuracy", truth, labels, "r3m", "0.5")
        where = f"synthetic.md {truth} {labels}"
        c.same(f"{where} n", (len(bt), len(r3m)) == (len(seeds), len(seeds)), True)
        c.same(f"{where} corrupted", corrupted,
               f"{np.mean([float(r['corrupted_frac']) for r in bt]):.3f}")
        c.same(f"{where} BT acc", bt_acc, _mean_std(_floats(bt, "accuracy"), 3))
        c.same(f"{where} R3M acc", r3m_acc, _mean_std(_floats(r3m, "accuracy"), 3))
        diff = 100 * (np.array(_floats(r3m, "accuracy")) - np.array(_floats(bt, "accuracy")))
        c.same(f"{where} gain", gain, f"{diff.mean():+.1f}")
        c.same(f"{where} precision", prec, _mean_std(_floats(r3m, "precision"), 3))
        c.same(f"{where} recall", rec, _mean_std(_floats(r3m, "recall"), 3))
    sweep = _table(text, "| truth | labels | λ | threshold")
    c.same("synthetic.md sweep rows", len(sweep), 24)
    for truth, labels, lam, threshold, acc, prec, rec, flagged in sweep:
        r3m = sel("accuracy", truth, labels, "r3m", lam)
        where = f"synthetic.md sweep {truth} {labels} λ={lam}"
        c.same(f"{where} n", len(r3m), len(seeds))
        c.same(f"{where} threshold", threshold, f"{np.log(1 / float(lam) - 1):+.2f}")
        for cell, field in ((acc, "accuracy"), (prec, "precision"), (rec, "recall"),
                            (flagged, "flagged")):
            c.same(f"{where} {field}", cell, _mean_std(_floats(r3m, field), 3))
    timing = _table(text, "| model | BT CPU s (min)")
    c.same("synthetic.md time rows", len(timing), 2)
    for row in timing:
        recomputed = []
        for field in ("cpu_seconds", "seconds"):
            bt = np.array([float(r[field]) for r in sel("time", row[0], "irrational p=1/2",
                                                         "bt", "")])
            r3m = np.array([float(r[field]) for r in sel("time", row[0], "irrational p=1/2",
                                                          "r3m", "0.5")])
            recomputed += [f"{bt.min():.3f}", f"{r3m.min():.3f}", f"{r3m.min() / bt.min():.3f}",
                           f"{np.median(r3m) / np.median(bt):.3f}"]
        for i, (cell, value) in enumerate(zip(row[1:], recomputed, strict=True)):
            c.same(f"synthetic.md time {row[0]} column {i + 2}", cell, value)


def check_reward_text(c: Checker) -> None:
    """experiments/reward/results/text.md (frozen MiniLM) from text.csv; without the CSV
    the file must hold no table."""
    if not (REWARD / "text.csv").exists():
        _no_table(c, "text.md", "| data | method")
        return
    rows = _rows(REWARD / "text.csv")
    text = (REWARD / "text.md").read_text()
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        cells[(r["data"], r["method"])].append(r)
    table = _table(text, "| data | method | held-out accuracy")
    c.same("text.md rows", len(table), len(cells))
    for data, method, acc, train_acc, seconds, n_test, n in table:
        rs, where = cells[(data, method)], f"text.md {data} {method}"
        c.same(f"{where} accuracy", acc, _mean_std(_floats(rs, "accuracy"), 3))
        trained = method != "length baseline"
        c.same(f"{where} train accuracy", train_acc,
               _mean_std(_floats(rs, "train_accuracy"), 3) if trained else "–")
        c.same(f"{where} train s", seconds,
               f"{np.mean(_floats(rs, 'seconds')):.2f}" if trained else "–")
        c.same(f"{where} held-out n", n_test, f"{np.mean(_floats(rs, 'n_test')):.0f}")
        c.same(f"{where} seeds", n, str(len(rs)))
    for data in {r["data"] for r in rows}:
        ratio = ", ".join(
            f"{np.sum(_floats(cells[(data, 'R3M λ=0.5')], f)) / np.sum(_floats(cells[(data, 'BT')], f)):.3f}"  # noqa: E501
            for f in ("cpu_seconds", "seconds"))
        c.same(f"text.md {data} R3M/BT time", f"{data} {ratio}" in text, True)


PANDALM_SCORES = {
    "mv": "Mean-Var −diverging score (λ = 1)",
    "mv_mu": "Mean-Var −|μ_A − μ_B| alone",
    "mv_sigma": "Mean-Var σ_A + σ_B alone",
    "bt": "BT −|Δr|",
    "len": "−|length difference| (no model)",
}


def check_reward_pandalm(c: Checker) -> None:
    """experiments/reward/results/pandalm.md from pandalm.csv (per seed and score)."""
    rows = _rows(REWARD / "pandalm.csv")
    text = (REWARD / "pandalm.md").read_text()

    def values(metric: str, score: str) -> list[float]:
        return _floats([r for r in rows if (r["metric"], r["score"]) == (metric, score)],
                       "value")

    label_key = {v: k for k, v in PANDALM_SCORES.items()}
    table = _table(text, "| disagreement score | AUROC")
    c.same("pandalm.md AUROC rows", len(table), len(PANDALM_SCORES))
    for label, cell in table:
        c.same(f"pandalm.md {label}", cell, _mean_std(values("auroc", label_key[label]), 3))
    for model, cell in _table(text, "| model | accuracy"):
        c.same(f"pandalm.md accuracy {model}", cell, _mean_std(values("accuracy", model), 3))
    first = rows[0]
    counts = (f"{first['n_pairs']} pairs ({first['n_skipped']} malformed rows skipped: "
              f"non-string responses), {first['n_disagree']} with annotator disagreement")
    c.same("pandalm.md counts", counts in text, True)
    seeds = sorted({r["seed"] for r in rows})
    c.same("pandalm.md seeds", f"over seeds {', '.join(seeds)} of the fold" in text, True)


def check_rl_from_preferences(c: Checker, folder: Path = REWARD) -> None:
    """experiments/reward/results/rl_from_preferences.md from rl_from_preferences_runs.csv
    (one row per policy), whose returns are the means of rl_from_preferences_episodes.csv;
    without the CSVs the file must hold no table."""
    name = "rl_from_preferences"
    if not (folder / f"{name}_runs.csv").exists():
        _no_table(c, f"{name}.md", "| labels → reward model")
        return
    runs = _rows(folder / f"{name}_runs.csv")
    episodes: dict[str, list[float]] = defaultdict(list)
    for e in _rows(folder / f"{name}_episodes.csv"):
        episodes[e["run"]].append(float(e["return"]))
    for r in runs:
        c.same(f"{name}_runs.csv {r['run']} return = mean of its episodes", r["return_mean"],
               float(np.mean(episodes[r["run"]])))
        c.same(f"{name}_runs.csv {r['run']} episodes", r["episodes"],
               str(len(episodes[r["run"]])))
    by_label: dict[str, dict[int, dict[str, str]]] = defaultdict(dict)
    for r in runs:
        by_label[r["label"]][int(r["seed"])] = r
    ref = {s: float(r["return_mean"]) for s, r in by_label["true reward"].items()}
    table = _table((folder / f"{name}.md").read_text(), "| labels → reward model")
    c.same(f"{name}.md rows", len(table), len(by_label))
    for label, n, ret, norm, *diag, minutes in table:
        seeds = by_label[label]
        order = sorted(seeds)
        returns = [float(seeds[s]["return_mean"]) for s in order]
        where = f"{name}.md {label}"
        c.same(f"{where} seeds", n, str(len(order)))
        c.same(f"{where} true return", ret, _mean_std(returns, 0))
        c.same(f"{where} normalized", norm,
               _mean_std([float(seeds[s]["return_mean"]) / ref[s] for s in order], 2))
        for cell, key in zip(diag, ("rm/query_accuracy", "rm/label_noise",
                                    "rm/outlier_precision", "rm/outlier_recall"), strict=True):
            vals = [float(seeds[s][key]) for s in order if seeds[s][key]]
            c.same(f"{where} {key}", cell, f"{np.mean(vals):.2f}" if vals else "-")
        c.same(f"{where} train min", minutes,
               f"{np.mean([float(seeds[s]['train_seconds']) for s in order]) / 60:.1f}")
def _script(path: Path):
    """Import an experiment script (its table function and settings) by path."""
    import importlib.util

    if str(path.parent) not in sys.path:  # the perf scripts import their sibling timings.py
        sys.path.append(str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _tables(text: str, header_start: str) -> list[list[list[str]]]:
    """Every Markdown table whose header begins `header_start`, as `_table` gives one."""
    lines, out = text.splitlines(), []
    for i, line in enumerate(lines):
        if line.startswith(header_start):
            out.append(_table("\n".join(lines[i:]), header_start))
    return out


def check_multiagent(c: Checker) -> None:
    """experiments/multiagent/results/multiagent.md from multiagent.csv (one row per evaluation
    episode): each run's mean (± sample std over episodes, or both traffic episodes), each
    learner's mean ± sample std over seeds of the runs' means, run costs; and the whole file
    must be what `learning_checks.py --from-csv` writes."""
    folder = ROOT / "multiagent" / "results"
    script = _script(ROOT / "multiagent" / "learning_checks.py")
    rows = _rows(folder / "multiagent.csv")
    runs: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        runs[(r["run"], r["train_seed"])].append(r)
    by_label = {spec.label: name for name, spec in script.RUNS.items()}
    text = (folder / "multiagent.md").read_text()
    wait = "mean_waiting_time"
    tables = [(t, "return") for t in _tables(text, "| policy | budget | team return")] + \
        [(t, wait) for t in _tables(text, "| policy | budget | mean waiting time")]
    seen = set()
    for table, key in tables:
        for label, budget, cell, cost in table:
            if label.startswith("**"):  # a learner's mean ± std over seeds
                label, n = label.strip("*").rsplit(", ", 1)
                name = by_label[label]
                seeds = budget.split("seeds ")[1].split(", ")
                c.same(f"multiagent.md {name} seeds", n, f"{len(seeds)} seeds")
                c.same(f"multiagent.md {name} seeds in the CSV", ", ".join(seeds), ", ".join(
                    sorted(s for (r, s) in runs if r == name)))
                means = [float(np.mean([float(r[key]) for r in runs[(name, s)]])) for s in seeds]
                digits, unit = (2, " s") if key == wait else (1, "")
                c.same(f"multiagent.md {name} over seeds", cell,
                       f"**{_mean_std(means, digits)}{unit}**")
                c.same(f"multiagent.md {name} total cost", cost,
                       f"{sum(float(runs[(name, s)][0]['run_wall_s']) for s in seeds):.0f} "
                       f"({sum(float(runs[(name, s)][0]['run_cpu_s']) for s in seeds):.0f}) total")
                continue
            name = by_label[label]
            seed = "" if budget == "-" else budget.split("seed ")[1]
            eps = runs[(name, seed)]
            seen.add((name, seed))
            values = [float(r[key]) for r in eps]
            c.same(f"multiagent.md {name} {seed} episodes", len(values),
                   script.SPREAD_EPISODES if key == "return" else script.GRID_EPISODES)
            c.same(f"multiagent.md {name} {seed} episode seeds", [int(r["episode_seed"])
                                                               for r in eps] == sorted(
                {int(r["episode_seed"]) for r in rows if r["env"] == eps[0]["env"]}), True)
            if budget != "-":
                c.same(f"multiagent.md {name} {seed} budget", budget,
                       f"{int(eps[0]['steps']):,} env steps, seed {seed}")
            recomputed = (_mean_std(values, 1) if key == "return" else
                          f"{np.mean(values):.2f} s ({' / '.join(f'{v:.2f}' for v in values)})")
            c.same(f"multiagent.md {name} {seed}", cell, recomputed)
            c.same(f"multiagent.md {name} {seed} cost", cost,
                   f"{float(eps[0]['run_wall_s']):.0f} ({float(eps[0]['run_cpu_s']):.0f})")
    c.same("multiagent.md shows every run of multiagent.csv", str(sorted(seen)), str(sorted(runs)))
    c.same("multiagent.md = learning_checks.py --from-csv", text, script.table(rows))


def check_umaze_iql(c: Checker) -> None:
    """experiments/offline/results/umaze_iql.md from umaze_iql.csv (one row per evaluation
    episode): per seed the IQL and random normalized scores (of the mean return, with that
    seed's dataset references) and success rates, the mean ± sample std over seeds; and the
    whole file must be what `umaze_iql.py --from-csv` writes."""
    folder = ROOT / "offline" / "results"
    rows = _rows(folder / "umaze_iql.csv")
    runs: dict[tuple[int, str], list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        runs[(int(r["seed"]), r["policy"])].append(r)
        low, high = float(r["ref_min"]), float(r["ref_max"])
        c.same(f"umaze_iql.csv seed {r['seed']} {r['policy']} {r['episode_seed']} normalized",
               r["normalized_score"], 100.0 * (float(r["return"]) - low) / (high - low))

    def score(seed: int, policy: str) -> float:
        eps = runs[(seed, policy)]
        low, high = float(eps[0]["ref_min"]), float(eps[0]["ref_max"])
        return 100.0 * (np.mean([float(r["return"]) for r in eps]) - low) / (high - low)

    def success(seed: int, policy: str) -> str:
        return f"{np.mean([int(r['success']) for r in runs[(seed, policy)]]):.2f}"

    text = (folder / "umaze_iql.md").read_text()
    seeds = []
    for row in _table(text, "| seed | IQL normalized score"):
        if row[0] == "mean ± std":
            for cell, policy in ((row[1], "iql"), (row[3], "random")):
                c.same(f"umaze_iql.md mean {policy}", cell,
                       _mean_std([score(s, policy) for s in seeds]))
            continue
        seed = int(row[0])
        seeds.append(seed)
        eps = runs[(seed, "iql")]
        c.same(f"umaze_iql.md seed {seed} episodes", len(eps), len(runs[(seed, "random")]))
        c.same(f"umaze_iql.md seed {seed}", " | ".join(row[1:6]), " | ".join([
            f"{score(seed, 'iql'):.1f}", success(seed, "iql"), f"{score(seed, 'random'):.1f}",
            success(seed, "random"),
            f"{float(eps[0]['ref_min']):.1f} / {float(eps[0]['ref_max']):.1f}"]))
    c.same("umaze_iql.md seeds", str(seeds), str(sorted({s for s, _ in runs})))
    script = _script(ROOT / "offline" / "umaze_iql.py")
    c.same("umaze_iql.md = umaze_iql.py --from-csv", text, script.table(rows))


def _hybrid_runs(rows: list[dict[str, str]], task: str, phase: str) -> dict[tuple, list[dict]]:
    """(controller, overrides, seed, steps) -> that run's rows of `phase` for one task."""
    runs: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if r["task"] == task and r["phase"] == phase:
            runs[(r["controller"], r["overrides"] or "–", r["seed"] or "–", r["steps"])].append(r)
    return runs


def _sample_std(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _sections(text: str) -> dict[str, str]:
    """'## ' heading's first word (lower case) -> that section's text."""
    parts = re.split(r"^## ", text, flags=re.M)[1:]
    return {p.split()[0].lower(): p for p in parts}


def _section_rows(section: str, header_start: str) -> list[list[str]]:
    return _table(section, header_start) if header_start in section else []


def check_hybrid_sac(c: Checker) -> None:
    """experiments/hybrid_sac/results/hybrid_sac.md from hybrid_sac.csv: every cell of its
    Platform, Goal, traffic and speed tables and learning curves, recomputed here; then the
    whole file must equal the script's `render` of the CSV (its sentences included)."""
    import importlib.util

    folder = ROOT / "hybrid_sac" / "results"
    rows = _rows(folder / "hybrid_sac.csv")
    text = (folder / "hybrid_sac.md").read_text()
    sections = _sections(text)

    def meta(rs: list[dict]) -> str:
        loads = [float(r[k]) for r in rs for k in ("load_start", "load_end")]
        return f"{rs[-1]['date'][:10]}, load {min(loads):.1f}–{max(loads):.1f}"

    def seeds(rs: list[dict]) -> str:
        s = [int(r["eval_seed"]) for r in rs]
        return f"{len(s)} ({min(s)}–{max(s)})"

    published_runs = 0
    for task in ("platform", "goal"):
        finals = _hybrid_runs(rows, task, "final")
        section = sections[task]
        table_rows = _section_rows(section, "| seed | overrides | budget")
        c.same(f"hybrid_sac.md {task} rows", len(table_rows), len(finals))
        for row in table_rows:
            key = ("hybrid_sac", row[1], row[0], row[2].replace(",", ""))
            rs = finals[key]
            ret = [float(r["return"]) for r in rs]
            expected = [seeds(rs)]
            if task == "goal":
                expected.append(f"{np.mean([float(r['scored']) for r in rs]):.2f}")
            expected += [f"{np.mean(ret):.3f}", f"{_sample_std(ret):.3f}",
                         f"{np.mean([float(r['length']) for r in rs]):.2f}",
                         f"{float(rs[0]['train_seconds']):.0f}", meta(rs)]
            for i, (cell, value) in enumerate(zip(row[3:], expected)):
                c.same(f"hybrid_sac.md {task} seed {row[0]} column {i + 4}", cell, value)
            published_runs += 1
        curves = _hybrid_runs(rows, task, "curve")
        lines = section.splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"Learning curve of seed (\d+)", line)
            if not m:
                continue
            steps_line, values_line = lines[i + 2], lines[i + 4]
            key = next(k for k in curves if k[2] == m.group(1))
            points: dict[int, list[float]] = defaultdict(list)
            metric = "scored" if task == "goal" else "return"
            for r in curves[key]:
                points[int(r["at_step"])].append(float(r[metric]))
            cells = [x.strip() for x in values_line.strip("|").split("|")][1:]
            c.same(f"hybrid_sac.md {task} curve steps", steps_line,
                   "| steps | " + " | ".join(f"{s // 1000}k" for s in sorted(points)) + " |")
            digits = 2 if task == "goal" else 3
            for s, cell in zip(sorted(points), cells):
                c.same(f"hybrid_sac.md {task} curve {s}", cell,
                       f"{np.mean(points[s]):.{digits}f}")
    finals = _hybrid_runs(rows, "traffic", "final")
    labels = {"fixed-time": "fixed-time 30 s", "fixed-cycle-30s": "fixed cycle 30 s green",
              "uniform-random": "uniform random phase", "hybrid_sac": "Hybrid SAC"}
    table_rows = _section_rows(sections["hybrid"], "| controller | overrides | env kwargs |")
    c.same("hybrid_sac.md traffic rows", len(table_rows), len(finals))
    for row in table_rows:
        controller = next(k for k, v in labels.items() if row[0].startswith(v))
        key = (controller, row[1], row[4], row[3].replace(",", "") if row[3] != "–" else "0")
        rs = finals[key]
        mean = {k: np.mean([float(r[k]) for r in rs]) if rs[0][k] else None
                for k in ("wait_time_weighted", "wait_per_decision", "throughput")}
        expected = [rs[0]["env_kwargs"], str(len(rs)),
                    "–" if mean["wait_time_weighted"] is None
                    else f"{mean['wait_time_weighted']:.2f}",
                    f"{mean['wait_per_decision']:.2f}", f"{mean['throughput']:.0f}",
                    f"{float(rs[0]['train_seconds']):.0f}" if rs[0]["train_seconds"] else "–",
                    meta(rs)]
        for i, (cell, value) in enumerate(zip(row[2:3] + row[5:], expected)):
            c.same(f"hybrid_sac.md traffic {row[0]} seed {row[4]} column {i}", cell, value)
        published_runs += 1
    speed = _hybrid_runs(rows, "speed", "round")
    for row in _section_rows(sections["speed:"], "| agent | steps/s per round"):
        controller = "sac" if row[0] == "SAC" else "hybrid_sac"
        rs = next(v for k, v in speed.items() if k[0] == controller)
        sps = [float(r["steps_per_second"]) for r in rs]
        c.same(f"hybrid_sac.md speed {row[0]} rounds", row[1],
               " / ".join(f"{x:.1f}" for x in sps))
        c.same(f"hybrid_sac.md speed {row[0]} median", row[2], f"{np.median(sps):.1f}")
    ratio = re.search(r"Ratio of medians Hybrid SAC / SAC: ([\d.]+)", text)
    if ratio:
        med = {k[0]: np.median([float(r["steps_per_second"]) for r in v]) for k, v in speed.items()}
        c.same("hybrid_sac.md speed ratio", ratio.group(1), f"{med['hybrid_sac'] / med['sac']:.2f}")
    spec = importlib.util.spec_from_file_location(
        "hybrid_sac_benchmarks", ROOT / "hybrid_sac" / "hybrid_sac_benchmarks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c.same("hybrid_sac.md equals the script's render of hybrid_sac.csv",
           text == module.render(rows), True)


def check_quickstart(c: Checker) -> None:
    """experiments/robustness/results/quickstart.md's table from quickstart_episodes.csv:
    mean ± population std (ddof 0) of the episode returns per (policy, perturbation), and
    normalized = mean / PPO's clean mean."""
    folder = ROOT / "robustness" / "results"
    cells: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in _rows(folder / "quickstart_episodes.csv"):
        label = f"{r['perturbation']}:{r['strength']}" if r["strength"] else r["perturbation"]
        cells[("random policy" if r["policy"] == "random" else r["policy"], label)].append(
            float(r["return"]))
    clean = float(np.mean(cells[("ppo", "none")]))
    lines = (folder / "quickstart.md").read_text().splitlines()
    start = next(i for i, x in enumerate(lines) if x.strip().startswith("policy "))
    published = []
    for line in lines[start + 2:]:
        if not line.startswith("    ") or not line.strip():
            break
        published.append(re.split(r"\s{2,}", line.strip()))
    c.same("quickstart.md rows", len(published), len(cells))
    for policy, pert, ret, norm in published:
        values = cells[(policy, pert)]
        mean = float(np.mean(values))
        c.same(f"quickstart.md {policy} {pert} return", ret,
               f"{mean:.1f} ± {float(np.std(values)):.1f}")
        c.same(f"quickstart.md {policy} {pert} normalized", norm,
               "-" if policy == "random policy" else f"{mean / clean:.2f}")


def check_ernie_overhead(c: Checker) -> None:
    """experiments/perf/results/ernie_overhead.md from ernie_overhead.csv: per (learner,
    variant) the median wall and update seconds over the repeats and their ratios to the same
    learner's `none` medians; the K = 1 target line, load range and timed total; then the whole
    file against `render`."""
    folder = ROOT / "perf" / "results"
    rows = _rows(folder / "ernie_overhead.csv")
    runs: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        runs[(r["learner"], r["variant"])].append(r)

    def median(key: tuple[str, str], field: str) -> float:
        return float(np.median([float(r[field]) for r in runs[key]]))

    text = (folder / "ernie_overhead.md").read_text()
    table = _table(text, "| learner | env | env steps | variant")
    c.same("ernie_overhead.md rows", len(table), len(runs))
    ratios = {}
    for learner, env, steps, variant, wall, wall_r, update, update_r in table:
        key, base = (learner, variant), (learner, "none")
        where = f"ernie_overhead.md {learner} {variant}"
        c.same(f"{where} env", f"{env} {steps}",
               " ".join(sorted({f"{r['env']} {r['env_steps']}" for r in runs[key]})))
        c.same(f"{where} wall s", wall, f"{median(key, 'wall_s'):.2f}")
        ratio = median(key, "wall_s") / median(base, "wall_s")
        c.same(f"{where} wall ratio", wall_r, f"{ratio:.2f}x")
        c.same(f"{where} update s", update, f"{median(key, 'update_s'):.2f}")
        c.same(f"{where} update ratio", update_r,
               f"{median(key, 'update_s') / median(base, 'update_s'):.2f}x")
        if variant == "ernie K=1":
            ratios[learner] = ratio
    target = next(x for x in text.splitlines() if x.startswith("Target <= 1.5x"))
    c.same("ernie_overhead.md K = 1 target", target.split(": ", 1)[1],
           ", ".join(f"{n} {r:.2f}x {'met' if r <= 1.5 else 'MISSED'}"
                     for n, r in ratios.items()) + ".")
    repeats = sorted({len(v) for v in runs.values()})
    c.same("ernie_overhead.md repeats", re.search(r"Median of (.+?) interleaved", text).group(1),
           " or ".join(map(str, repeats)))
    loads = [float(r[k]) for r in rows for k in ("load_start", "load_end")]
    c.same("ernie_overhead.md load range",
           re.search(r"load average (\S+ to \S+) at", text).group(1),
           f"{min(loads):.2f} to {max(loads):.2f}")
    c.same("ernie_overhead.md timed total",
           re.search(r"Sum of the timed `learn` calls: (\S+) min", text).group(1),
           f"{sum(float(r['wall_s']) for r in rows) / 60:.1f}")
    render = _script(ROOT / "perf" / "ernie_overhead.py").render
    c.same("ernie_overhead.md = render(ernie_overhead.csv)", text, render(rows))


def check_learning_parity(c: Checker) -> None:
    """experiments/perf/results/learning_parity_<algo>.md from its .csv (one row per eval
    episode), for each comparison with rows: per side the finished seeds, final step,
    final-return IQM and its stratified bootstrap CI, mean, per-seed finals and median train
    seconds; P(robustrl > SB3) and its CI; every learning-curve cell (IQM [CI] (n)); the load
    range; then the whole file against the script's `render` of the CSV."""
    script = _script(ROOT / "perf" / "learning_parity.py")
    for cmp in script.COMPARISONS.values():
        if cmp.file(".csv").exists():
            _check_learning_parity(c, cmp, script.render)


def _check_learning_parity(c: Checker, cmp, render) -> None:
    from robustrl.bench.stats import (
        iqm,
        probability_of_improvement,
        probability_of_improvement_ci,
        stratified_bootstrap_ci,
    )

    rows = _rows(cmp.file(".csv"))
    text = cmp.file(".md").read_text()
    md = cmp.file(".md").name
    score: dict[tuple[str, int, int], list[float]] = defaultdict(list)
    done: dict[str, set[int]] = defaultdict(set)
    for r in rows:
        score[(r["side"], int(r["seed"]), int(r["step"]))].append(float(r["return"]))
        if int(r["step"]) >= int(r["target_steps"]):
            done[r["side"]].add(int(r["seed"]))
    finals: dict[str, dict[int, float]] = {}
    table = {cells[0]: cells for cells in _table(text, "| side | seeds | final step")}
    for side in ("robustrl", "sb3"):
        seeds = sorted(done[side])
        last = {s: max(st for (sd, se, st) in score if sd == side and se == s) for s in seeds}
        finals[side] = {s: float(np.mean(score[(side, s, last[s])])) for s in seeds}
        cells = table[side]
        where = f"{md} {side}"
        c.same(f"{where} seeds", cells[1], " ".join(map(str, seeds)))
        if not seeds:
            continue
        c.same(f"{where} final step", cells[2], " ".join(map(str, sorted(set(last.values())))))
        v = list(finals[side].values())
        lo, hi = stratified_bootstrap_ci([v])
        c.same(f"{where} IQM [CI]", cells[3], f"{iqm([v]):.1f} [{lo:.1f}, {hi:.1f}]")
        c.same(f"{where} mean", cells[4], f"{np.mean(v):.1f}")
        c.same(f"{where} per-seed finals", cells[5],
               ", ".join(f"{s}: {x:.1f}" for s, x in finals[side].items()))
        train = [max(float(r["train_s"]) for r in rows if r["side"] == side
                     and int(r["seed"]) == s) for s in seeds]
        c.same(f"{where} train s", cells[6], f"{np.median(train):.0f}")
        for st in sorted({st for (sd, se, st) in score if sd == side and se in seeds}):
            vals = [float(np.mean(score[(side, s, st)])) for s in seeds
                    if (side, s, st) in score]
            lo, hi = stratified_bootstrap_ci([vals])
            curve = _table(text, "| step | robustrl | SB3 |")
            cell = next(x for x in curve if x[0] == str(st))[1 if side == "robustrl" else 2]
            c.same(f"{where} curve {st}", cell,
                   f"{iqm([vals]):.1f} [{lo:.1f}, {hi:.1f}] (n={len(vals)})")
    a, b = list(finals["robustrl"].values()), list(finals["sb3"].values())
    if a and b:
        lo, hi = probability_of_improvement_ci([a], [b])
        c.same(f"{md} P(robustrl > SB3)",
               re.search(r"^P\(robustrl > SB3\) = (.+)\.$", text, re.M).group(1),
               f"{probability_of_improvement([a], [b]):.2f} [{lo:.2f}, {hi:.2f}]")
    loads = [float(r["load_1min"]) for r in rows]
    c.same(f"{md} load range",
           re.search(r"load average (\S+ to \S+) at", text).group(1),
           f"{min(loads):.2f} to {max(loads):.2f}")
    c.same(f"{md} = render({cmp.file('.csv').name})", text, render(rows, cmp))


PERF = ROOT / "perf" / "results"
RUN = re.compile(r"; run (\S+), load (\S+–\S+); raw rows `(\S+)\.csv`\)$")


def _speed_run(c: Checker, script: str) -> tuple[str, list[dict[str, str]]]:
    """`script`'s result cell in perf/results/speed.md and the CSV rows of the run it names
    ([] when it names none: then the cell must hold no number, as no raw rows back one)."""
    cells = [r[-1] for r in _table((PERF / "speed.md").read_text(), "| what | command |")
             if r[1].startswith(f"`python experiments/perf/{script}.py")]
    c.same(f"speed.md {script} rows", len(cells), 1)
    cell, path = cells[0], PERF / f"{script}.csv"
    m = RUN.search(cell)
    if not m:
        c.same(f"speed.md {script}: no number without raw rows", bool(re.search(r"\d", cell)),
               False)
        return cell, []
    rows = [r for r in _rows(path) if r["run"] == m.group(1)] if path.exists() else []
    c.same(f"speed.md {script} run {m.group(1)} has rows", bool(rows), True)
    if rows:
        c.same(f"speed.md {script} raw rows", m.group(3), script)
        loads = [float(r["load_1min"]) for r in rows]
        c.same(f"speed.md {script} load", m.group(2), f"{min(loads):.2f}–{max(loads):.2f}")
        cell_of = _script(ROOT / "perf" / f"{script}.py").cell
        c.same(f"speed.md {script} = cell({script}.csv)", cell, cell_of(rows))
    return cell, rows


def check_env_speed_traffic(c: Checker) -> None:
    """speed.md's traffic-adapter row from env_speed_traffic.csv (one row per timed run, CPU
    seconds): per env, ours and raw steps/s (median over the pairs) and the overhead (median
    over the pairs of ours / raw CPU time - 1), also with per-agent info; pairs and steps."""
    cell, rows = _speed_run(c, "env_speed_traffic")
    if not rows:
        return
    pairs: dict[tuple[str, str], dict[str, dict[str, dict[str, str]]]] = defaultdict(
        lambda: defaultdict(dict))
    for r in rows:
        pairs[(r["what"].removeprefix("traffic/"), r["variant"])][r["round"]][r["side"]] = r
    done = {k: [p for p in v.values() if len(p) == 2] for k, v in pairs.items()}

    def overhead(key: tuple[str, str]) -> str:
        ratios = [float(p["ours"]["seconds"]) / float(p["raw"]["seconds"]) for p in done[key]]
        return f"{100 * (float(np.median(ratios)) - 1):+.1f}"

    found = re.findall(r"([\w-]+): ours (\d+) vs raw (\d+) steps/s, overhead ([+-]\d+\.\d)% "
                       r"\(([+-]\d+\.\d)% with per-agent info too\)", cell)
    c.same("speed.md traffic envs", " ".join(f[0] for f in found),
           " ".join(dict.fromkeys(k[0] for k in done)))
    for env, ours, raw, plain, info in found:
        key = (env, "factors")
        for side, published in (("ours", ours), ("raw", raw)):
            rates = [int(p[side]["steps"]) / float(p[side]["seconds"]) for p in done[key]]
            c.same(f"speed.md traffic {env} {side} steps/s", published,
                   f"{np.median(rates):.0f}")
        c.same(f"speed.md traffic {env} overhead", plain, overhead(key))
        c.same(f"speed.md traffic {env} overhead with per-agent info", info,
               overhead((env, "factors + per-agent info")))
    c.same("speed.md traffic pairs", re.search(r"median of (.+?) interleaved", cell).group(1),
           " or ".join(map(str, sorted({len(v) for v in done.values()}))))
    c.same("speed.md traffic steps", re.search(r"ratios, (.+?) steps per run", cell).group(1),
           " or ".join(map(str, sorted({int(p["raw"]["steps"]) for v in done.values()
                                        for p in v}))))


def check_env_speed_mpe_maze(c: Checker) -> None:
    """speed.md's particle-world / maze / hybrid row from env_speed_mpe_maze.csv (one row per
    side and round, with its median step time): per env the overhead (median over the rounds
    of ours / raw median step time - 1) and each side's steps/s (1e9 / the median of its
    rounds' median step ns); rounds and steps per round."""
    cell, rows = _speed_run(c, "env_speed_mpe_maze")
    if not rows:
        return
    rounds: dict[str, dict[str, dict[str, dict[str, str]]]] = defaultdict(
        lambda: defaultdict(dict))
    for r in rows:
        rounds[r["what"]][r["round"]][r["side"]] = r
    done = {env: [x for x in v.values() if len(x) == 2] for env, v in rounds.items()}
    found = re.findall(r"(\S+(?: flatten=True)?) ([+-]\d+\.\d)% \(ours (\d+) vs raw (\d+) "
                       r"steps/s\)", cell)
    c.same("speed.md adapters envs", " ".join(f[0] for f in found), " ".join(done))
    for env, published, ours, raw in found:
        ns = {side: [float(x[side]["median_step_ns"]) for x in done[env]]
              for side in ("ours", "raw")}
        ratios = [o / r for o, r in zip(ns["ours"], ns["raw"])]
        c.same(f"speed.md adapters {env} overhead", published,
               f"{100 * (float(np.median(ratios)) - 1):+.1f}")
        c.same(f"speed.md adapters {env} ours steps/s", ours, f"{1e9 / np.median(ns['ours']):.0f}")
        c.same(f"speed.md adapters {env} raw steps/s", raw, f"{1e9 / np.median(ns['raw']):.0f}")
    c.same("speed.md adapters rounds", re.search(r"median over (.+?) rounds", cell).group(1),
           " or ".join(map(str, sorted({len(v) for v in done.values()}))))
    c.same("speed.md adapters steps", re.search(r"times, (.+?) lockstep", cell).group(1),
           " or ".join(map(str, sorted({int(r["steps"]) for r in rows}))))


def check_bench_workers_speedup(c: Checker) -> None:
    """speed.md's bench-workers row from bench_workers_speedup.csv (one row per suite run):
    the ratio of the 1-worker to the N-worker median wall time, both medians, rounds, cores."""
    cell, rows = _speed_run(c, "bench_workers_speedup")
    if not rows:
        return
    seconds: dict[int, dict[str, float]] = defaultdict(dict)
    for r in rows:
        seconds[int(r["workers"])][r["round"]] = float(r["seconds"])
    many = max(seconds)
    both = set(seconds[1]) & set(seconds[many])
    one_s = float(np.median([seconds[1][r] for r in both]))
    many_s = float(np.median([seconds[many][r] for r in both]))
    m = re.match(r"\*\*(\S+)×\*\* \((\S+) vs (\S+) s, median of (\d+) interleaved rounds, "
                 r"(\d+) cores;", cell)
    for what, published, recomputed in (
            ("speedup", m.group(1), f"{one_s / many_s:.2f}"),
            (f"{many} workers s", m.group(2), f"{many_s:.1f}"),
            ("1 worker s", m.group(3), f"{one_s:.1f}"), ("rounds", m.group(4), str(len(both))),
            ("cores", m.group(5), " ".join(sorted({r["cores"] for r in rows})))):
        c.same(f"speed.md bench workers {what}", published, recomputed)


def check_ray_overhead(c: Checker) -> None:
    """perf/results/ray_overhead.md from ray_overhead.csv (one row per timed suite run): per
    complete run the wall seconds of each backend, Ray's start-up, the load range, Ray vs the
    local pool and 2 nodes vs 1; then the whole file against the script's `render` (which,
    without rows, publishes no number)."""
    path = PERF / "ray_overhead.csv"
    rows = _rows(path) if path.exists() else []
    text = (PERF / "ray_overhead.md").read_text()
    script = _script(ROOT / "perf" / "ray_overhead.py")
    runs: dict[str, dict[str, dict[str, str]]] = defaultdict(dict)
    for r in rows:
        runs[r["run"]][r["side"]] = r
    complete = {k: v for k, v in runs.items() if len(v) == 4}
    tables = _tables(text, "| run | jobs × steps |")
    table = tables[0] if tables else []
    c.same("ray_overhead.md rows", len(table), len(complete))
    for cells in table:
        run, jobs, load, *published = cells
        sides = complete.get(run, {})
        c.same(f"ray_overhead.md run {run} complete in ray_overhead.csv", len(sides), 4)
        if len(sides) != 4:
            continue
        local, ray, one, two = (float(sides[k]["seconds"]) for k in (
            "local pool, 2 workers", "ray, 2 CPUs (one node)", "ray cluster, 1 node(s) x 1 CPU",
            "ray cluster, 2 node(s) x 1 CPU"))
        loads = [float(r["load_1min"]) for r in sides.values()]
        first = sides["local pool, 2 workers"]
        recomputed = [f"{local:.1f}", f"{ray:.1f}", f"{one:.1f}", f"{two:.1f}",
                      f"{float(sides['ray, 2 CPUs (one node)']['startup_s']):.1f}",
                      f"{100 * (ray / local - 1):+.1f}%", f"{one / two:.2f}×"]
        c.same(f"ray_overhead.md {run} jobs × steps", jobs,
               f"{first['jobs']} × {first['job_steps']}")
        c.same(f"ray_overhead.md {run} load", load, f"{min(loads):.2f}–{max(loads):.2f}")
        for i, (a, b) in enumerate(zip(published, recomputed)):
            c.same(f"ray_overhead.md {run} column {i + 4}", a, b)
    c.same("ray_overhead.md = render(ray_overhead.csv)", text, script.render(rows))


_SPEED_CLAIM = re.compile(
    r"\*{0,2}(\d+\.\d+)×\*{0,2} [^(]{0,80}\((\d+(?:\.\d+)?) vs (\d+(?:\.\d+)?) steps/s[^)]*?"
    r"rounds' ratios,? (\d+\.\d+)–(\d+\.\d+)")
"""A training-speed claim: "**R×** ... (ours vs theirs steps/s, ... rounds' ratios lo–hi"."""


def _timed_runs(path: Path, ours: str) -> dict[str, list[tuple[float, ...]]]:
    """One run of bench_vs_sb3.py / mappo_speed.py per block of rows (a block ends where a
    side's round repeats or the round number falls): {what: [(ratio of medians, median ratio
    of rounds, ours, theirs, lowest and highest round ratio)]}, one tuple per reference side of
    each run (mappo_speed.py times MAPPO against two)."""
    blocks: dict[str, list[list[dict[str, str]]]] = defaultdict(list)
    for r in _rows(path):
        run = blocks[r["what"]]
        if (not run or int(r["round"]) < int(run[-1][-1]["round"])
                or any((x["side"], x["round"]) == (r["side"], r["round"]) for x in run[-1])):
            run.append([])
        run[-1].append(r)
    out: dict[str, list[tuple[float, ...]]] = defaultdict(list)
    for what, runs in blocks.items():
        for rows in runs:
            sides: dict[str, dict[str, float]] = defaultdict(dict)
            for r in rows:
                sides[r["side"]][r["round"]] = float(r["steps_per_s"])
            for side in sorted(set(sides) - {ours}):
                rounds = sorted(set(sides[ours]) & set(sides[side]))
                if not rounds:
                    continue
                a = [sides[ours][k] for k in rounds]
                b = [sides[side][k] for k in rounds]
                ratios = [x / y for x, y in zip(a, b)]
                out[what].append((float(np.median(a)) / float(np.median(b)),
                                  float(np.median(ratios)), float(np.median(a)),
                                  float(np.median(b)), min(ratios), max(ratios)))
    return out


def check_training_speed(c: Checker) -> None:
    """The SAC / Hybrid SAC / PPO rows (bench_vs_sb3.csv: ratio of medians) and the MAPPO row
    (mappo_speed.csv: median of the rounds' ratios) of README's and speed.md's speed tables:
    every claim "R× (ours vs theirs steps/s, ... rounds' ratios lo–hi" is one committed run."""
    sb3 = _timed_runs(PERF / "bench_vs_sb3.csv", "robustrl")
    mappo = _timed_runs(PERF / "mappo_speed.csv", "mappo")
    readme = (ROOT.parent / "README.md").read_text()
    for name, text in (("README.md", readme), ("speed.md", (PERF / "speed.md").read_text())):
        for row in _table(text, "| what | command |"):
            kind = re.match(r"`python experiments/perf/(bench_vs_sb3\.py (\w+)|mappo_speed\.py)",
                            row[1])
            if kind is None:
                continue
            runs = (mappo["mappo mpe/simple_spread"] if kind.group(2) is None
                    else sb3[f"{kind.group(2)} HalfCheetah-v5"])
            claims = _SPEED_CLAIM.findall(row[-1])
            c.same(f"{name} {row[0][:30]} speed claims", len(claims) > 0, True)
            ratio_at = 1 if kind.group(2) is None else 0
            for claim in claims:
                found = any(_as_published((run[ratio_at], *run[2:]), claim) == claim
                            for run in runs)
                c.same(f"{name} {row[0][:30]}: {claim} matches a committed run",
                       "yes" if found else "no", "yes")


def _as_published(values: tuple[float, ...], published: tuple[str, ...]) -> tuple[str, ...]:
    """`values` rounded to the decimals of the published numbers they are compared with."""
    return tuple(f"{v:.{len(p.split('.')[1]) if '.' in p else 0}f}"
                 for v, p in zip(values, published, strict=True))


TABLE_CHECKS = [
    check_ernie_summary, check_heron_summary, check_heron_traffic,
    check_intent, check_text_finetune, check_reward_synthetic, check_reward_text,
    check_reward_pandalm, check_rl_from_preferences, check_multiagent, check_umaze_iql,
    check_hybrid_sac, check_quickstart, check_ernie_overhead, check_learning_parity,
    check_env_speed_traffic, check_env_speed_mpe_maze, check_bench_workers_speedup,
    check_ray_overhead, check_training_speed,
]
"""The published tables beyond the bench reports (each recomputed from its raw rows)."""


def main() -> int:
    c = Checker()
    folders = sorted(p.parent for p in ROOT.glob("*/results/*/episodes.csv"))
    for folder in folders:
        check_bench_report(folder, c)
    names = ", ".join(f.relative_to(ROOT).as_posix() for f in folders)
    print(f"bench reports: {names}")
    for check in TABLE_CHECKS:
        check(c)
    print("tables: " + ", ".join(check.__name__.removeprefix("check_") for check in TABLE_CHECKS))
    for e in c.errors:
        print(f"MISMATCH {e}")
    print(f"{c.checked} numbers recomputed from committed raw data, {len(c.errors)} mismatches")
    return 1 if c.errors else 0


if __name__ == "__main__":
    sys.exit(main())
