"""Recompute the published numbers that have committed raw data, and fail on any mismatch.

    python experiments/check_results.py          # prints what it checked; exit 1 on a mismatch

What it checks (each from the raw rows committed next to the table):
- every bench report folder `experiments/*/results/*/` holding `episodes.csv` (the results
  database's per-episode export): its tables (report.md and the CSVs) are regenerated from
  the episodes (`robustrl bench report FOLDER/episodes.csv --out FOLDER`) and must be
  identical, line for line.
- the headline table of `experiments/ernie/results/ernie.md` (all but its Lipschitz rows)
  from the four ERNIE reports' episodes, with the statistics that table states (mean ±
  Student-t 95% CI over seeds, normalized = perturbed / clean mean, AUC by trapezoid with the
  clean point at the kind's identity strength), and its P(A > B) table from the reports;
  heron.md's simple_spread row and doubled-inflow quote from the HERON reports'.
- `experiments/heron/results/heron_traffic*.md` from the `.csv` beside each (one row per
  evaluation episode; a table file without one must hold no table), and heron.md's 2x2 grid
  row and margin-sensitivity quote from `heron_traffic_2x2grid.csv`.
- `experiments/offline/results/intent_{medium,maze}.md` from `intent_{medium,maze}.csv`.
- `experiments/reward/results/text_finetune.md` from `text_finetune.csv`.
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


def _auc(curve: list[tuple[float, float]], identity: float) -> float:
    points = sorted(curve + ([] if identity in [s for s, _ in curve] else [(identity, 1.0)]))
    xs, ys = zip(*points)
    area = sum((x1 - x0) * (y0 + y1) / 2 for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:]))
    return area / (xs[-1] - xs[0])


def check_bench_report(folder: Path, c: Checker) -> None:
    """A bench report folder: its tables regenerated from its episodes.csv must be identical
    (`robustrl bench report FOLDER/episodes.csv --out FOLDER` wrote them)."""
    from robustrl.bench import report

    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(folder / "episodes.csv", Path(tmp) / "episodes.csv")
        report(Path(tmp) / "episodes.csv", tmp, plots=False)
        for name in TABLES:
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

    def grid(self, agent: str, pert: str) -> list[tuple[float, float]]:
        return sorted((s, float(np.mean(v))) for (e, a, p, s), v in self.seeds.items()
                      if a == agent and p == pert)

    def average(self, agent: str, pert: str) -> float:
        return float(np.mean([m for _, m in self.grid(agent, pert)]))

    def auc(self, agent: str, pert: str, identity: float) -> float:
        clean = self.mean(agent, "none")
        return _auc([(s, m / clean) for s, m in self.grid(agent, pert)], identity)


def check_ernie_summary(c: Checker) -> None:
    """The headline table of experiments/ernie/results/ernie.md (all but its Lipschitz rows)
    from the four ERNIE bench reports' episodes."""
    folder = ROOT / "ernie" / "results"
    hop, spread, adv, grid = (Report(folder / f"ernie_{n}") for n in
                              ("mujoco", "mpe", "mpe_adversarial", "traffic"))
    good = "agents=agent_0+agent_1"
    trained = "policy=adversary,adv_steps=100000"

    def dyn(r: Report, a: str, pert: str) -> str:
        return (f"{r.auc(a, pert, 1.0):.2f} / {min(m for _, m in r.grid(a, pert)):.0f} / "
                f"{r.average(a, pert):.0f}")

    rows = {  # the table's rows, in order, as (report, agent) -> the published cell
        "Hopper-v5 (PPO, 100k steps)": lambda r, a: r.mean_ci(a, "none", None, 0),
        "mass": lambda r, a: dyn(r, a, "dyn-mass"),
        "friction": lambda r, a: dyn(r, a, "dyn-friction"),
        "mpe/simple_spread": lambda r, a: r.mean_ci(a, "none", None, 1),
        "obs-gaussian 0.1": lambda r, a: (f"{_num(r.average(a, 'obs-gaussian'), 1)} / "
                                          f"{_num(r.average(a, 'obs-pgd'), 1)}"),
        "one teammate random": lambda r, a: _num(r.mean(a, "adversary-agents", 1.0), 1),
        "one teammate adversarial": lambda r, a: _num(r.mean(
            a, f"adversary-agents,agents={'agent_2' if r is spread else 'agent_1'},{trained}",
            1.0), 1),
        "mpe/simple_adversary": lambda r, a: r.mean_ci(a, "none", None, 1),
        "obs-gaussian 0.5": lambda r, a: (f"{_num(r.average(a, f'obs-gaussian,{good}'), 1)} / "
                                          f"{_num(r.average(a, f'obs-pgd,{good}'), 1)}"),
        "obs-pgd ε = 1": lambda r, a: (f"{r.mean_ci(a, f'obs-pgd,{good}', 1.0, 1)} "
                                       f"({r.auc(a, f'obs-pgd,{good}', 0.0):.2f})"),
        "one good agent random": lambda r, a: _num(
            r.mean(a, "adversary-agents,agents=agent_1", 1.0), 1),
        "traffic/2x2grid": lambda r, a: r.mean_ci(a, "none", None, 2),
        "obs-gaussian σ = 0.1": lambda r, a: _num(r.mean(a, "obs-gaussian", 0.1), 2),
        "act-replace p = 0.05": lambda r, a: _num(r.mean(a, "act-replace", 0.05), 2),
        "inflow": lambda r, a: " / ".join(_num(r.mean(a, "dyn-inflow", s), d)
                                          for s, d in ((0.5, 2), (1.5, 2), (2.0, 1))),
    }
    section = {"Hopper": (hop, "ppo"), "mpe/simple_spread": (spread, "mappo"),
               "mpe/simple_adversary": (adv, "mappo"), "traffic": (grid, "idqn")}
    text = (folder / "ernie.md").read_text()
    report, learner = hop, "ppo"
    for row in _table(text, "| task (learner, budget)"):
        task, metric = row[0], row[1]
        for prefix, (r, name) in section.items():
            if task.startswith(prefix):
                report, learner = r, name
        label = task or metric
        fn = next((f for k, f in rows.items() if label.startswith(k)), None)
        if fn is None or "Lipschitz" in metric:
            continue  # Lipschitz: from the runs table, not exported (marked in ernie.md)
        for cell, suffix in zip(row[2:], ("", "+ernie", "+ernie-stackelberg")):
            c.same(f"ernie.md {task or metric} {learner}{suffix}", cell.replace("**", ""),
                   fn(report, learner + suffix))


def check_ernie_improvements(c: Checker) -> None:
    """ernie.md's pooled P(A > B) table against the reports' improvements.csv (themselves
    checked against a fresh report by `check_bench_report`)."""
    folder = ROOT / "ernie" / "results"
    suites = {"Hopper": ("ernie_mujoco", "ppo"), "simple_spread": ("ernie_mpe", "mappo"),
              "simple_adversary": ("ernie_mpe_adversarial", "mappo"),
              "2x2 grid": ("ernie_traffic", "idqn")}
    text = (folder / "ernie.md").read_text()
    for row in _table(text, "| suite (conditions) | P(ERNIE > baseline)"):
        name, learner = next(v for k, v in suites.items() if row[0].startswith(k))
        pooled = {(r["a"], r["b"]): r for r in _rows(folder / name / "improvements.csv")
                  if r["perturbation"] == r["strength"] == "all"}
        for cell, variant in zip(row[1:], ("+ernie", "+ernie-stackelberg")):
            r = pooled[(learner + variant, learner)]
            c.same(f"ernie.md P({learner}{variant} > {learner}) {name}", cell,
                   f"{float(r['p']):.3f} [{float(r['lo']):.3f}, {float(r['hi']):.3f}]")
            c.same(f"ernie.md conditions {name}", row[0].split("(")[-1].rstrip(")"), r["tasks"])


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
    """The rows (cells stripped) of the Markdown table whose header begins `header_start`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([x.strip() for x in line.strip("|").split("|")])
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


def main() -> int:
    c = Checker()
    folders = sorted(p.parent for p in ROOT.glob("*/results/*/episodes.csv"))
    for folder in folders:
        check_bench_report(folder, c)
    check_ernie_summary(c)
    check_ernie_improvements(c)
    check_heron_summary(c)
    check_heron_traffic(c)
    check_intent(c)
    check_text_finetune(c)
    names = ", ".join(f.relative_to(ROOT).as_posix() for f in folders)
    print(f"bench reports: {names}")
    print("tables: ernie/results/ernie.md (headline and P(A > B) tables), "
          "heron/results/heron.md (2 rows, 2 quotes), heron/results/heron_traffic_2x2grid.md, "
          "offline/results/intent_medium.md, "
          "offline/results/intent_maze.md, reward/results/text_finetune.md")
    for e in c.errors:
        print(f"MISMATCH {e}")
    print(f"{c.checked} numbers recomputed from committed raw data, {len(c.errors)} mismatches")
    return 1 if c.errors else 0


if __name__ == "__main__":
    sys.exit(main())
