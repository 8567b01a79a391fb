"""Learning checks of the multi-agent learners, with per-episode raw rows.

Runs (name: what). Learned runs train seeds 0, 1, 2; the seeds recorded before this script
existed are marked "was": the rerun reproduces those numbers, the other seeds are new.
  spread-random     uniformly random actions on mpe/simple_spread (N=3, 25 cycles), 100
                    episodes (seeds 10000-10099, action rng seed 10000)
  spread-mappo      MAPPO, agents/mappo.toml `mpe/*` settings, 20,000 env steps (was: seed
                    0); greedy on the same 100 episodes
  grid-fixed        the fixed-time controller (30 s greens) on traffic/2x2grid,
                    num_seconds=1000, 2 held-out episodes (seeds 100, 101)
  grid-idqn         IDQN (QCOMBO mixer, agents/idqn.toml `traffic/*` settings), 2,000 env
                    steps = 10 episodes of 1,000 s (was: seed 0); greedy on the same 2 episodes
  grid-mfq          mean-field Q (agents/mfq.toml), 3,000 env steps (was: seeds 0, 1)
  grid-mfq-dro      the same with dro_rho=0.1 (distributionally robust target) (was: 0, 1)
  grid-idqn-3k      IDQN with QCOMBO, 3,000 env steps, the mfq comparison (was: seed 0)
  grid-idqn-none-3k IDQN without a centralized value (mixer=none), 3,000 env steps (was: 0)

Every learner is built by `robustrl.agents.make_agent` (the agents/*.toml settings for the
env id) and trained by its `learn`; evaluation is `robustrl.train.evaluate` (greedy), one
call per episode on traffic so that each episode's waiting time is kept. Each evaluation
episode is one row of `results/multiagent.csv`, written (atomically: temp file + rename)
as soon as its run finishes; a rerun skips the (run, seed) pairs already there. The table
`results/multiagent.md` is a pure function of the CSV (`--from-csv` rewrites it;
experiments/check_results.py recomputes its numbers).

    python experiments/multiagent/learning_checks.py                       # every run
    python experiments/multiagent/learning_checks.py --runs grid-mfq --seeds 0
    python experiments/multiagent/learning_checks.py --from-csv
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import resource
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from robustrl.core.io import atomic_write_text

HERE = Path(__file__).resolve().parent
CSV = HERE / "results" / "multiagent.csv"
TABLE = HERE / "results" / "multiagent.md"
SPREAD = {"N": 3, "max_cycles": 25}
GRID = {"num_seconds": 1000}
SPREAD_EPISODES, SPREAD_SEED = 100, 10_000
GRID_EPISODES, GRID_SEED = 2, 100
FIELDS = ["run", "env", "policy", "steps", "train_seed", "episode_seed", "return",
          "mean_waiting_time", "run_wall_s", "run_cpu_s", "load_1min", "date", "git_commit",
          "torch", "pettingzoo", "sumo-rl", "libsumo", "host"]


@dataclass(frozen=True)
class Spec:
    env: str
    policy: str  # a learner name, or "random" / "fixed-time"
    label: str
    steps: int = 0
    seeds: tuple[int, ...] = (0,)
    config: dict[str, Any] = field(default_factory=dict)


RUNS = {
    "spread-random": Spec("mpe/simple_spread", "random", "uniform random actions"),
    "spread-mappo": Spec("mpe/simple_spread", "mappo", "MAPPO", 20_000, (0, 1, 2)),
    "grid-fixed": Spec("traffic/2x2grid", "fixed-time", "fixed-time controller"),
    "grid-idqn": Spec("traffic/2x2grid", "idqn", "IDQN (QCOMBO)", 2_000, (0, 1, 2)),
    "grid-mfq": Spec("traffic/2x2grid", "mfq", "mfq", 3_000, (0, 1, 2)),
    "grid-mfq-dro": Spec("traffic/2x2grid", "mfq", "mfq, dro_rho = 0.1", 3_000, (0, 1, 2),
                         {"dro_rho": 0.1}),
    "grid-idqn-3k": Spec("traffic/2x2grid", "idqn", "IDQN with QCOMBO (default)", 3_000, (0, 1, 2)),
    "grid-idqn-none-3k": Spec("traffic/2x2grid", "idqn", "IDQN, mixer = none", 3_000, (0, 1, 2),
                              config={"mixer": "none"}),
}


def read_rows(path: Path = CSV) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def write_rows(rows: list[dict], path: Path = CSV) -> None:
    """The whole CSV through a temp file + rename: a kill mid-write leaves the old file."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _random_spread() -> list[tuple[int, float, float | None]]:
    from robustrl.envs import make

    env = make("mpe/simple_spread", **SPREAD)
    rng = np.random.default_rng(SPREAD_SEED)
    out = []
    try:
        for ep in range(SPREAD_EPISODES):
            env.reset(seed=SPREAD_SEED + ep)
            total = 0.0
            while env.agents:
                _, rewards, _, _, _ = env.step({a: int(rng.integers(5)) for a in env.agents})
                total += sum(rewards.values())
            out.append((SPREAD_SEED + ep, total, None))
    finally:
        env.close()
    return out


def _fixed_time() -> list[tuple[int, float, float | None]]:
    from robustrl.envs.traffic_baselines import evaluate_controller

    out = []
    for ep in range(GRID_EPISODES):
        r = evaluate_controller("traffic/2x2grid", "fixed-time", episodes=1, seed=GRID_SEED + ep,
                                in_subprocess=True, **GRID)
        out.append((GRID_SEED + ep, r["mean_return"], r["mean_waiting_time"]))
    return out


def _learned(spec: Spec, seed: int) -> list[tuple[int, float, float | None]]:
    from robustrl.agents import make_agent
    from robustrl.train import evaluate

    traffic = spec.env.startswith("traffic/")
    agent = make_agent(spec.policy, spec.env, seed=seed, env_kwargs=GRID if traffic else SPREAD,
                       **spec.config)
    try:
        agent.learn(spec.steps)
        if not traffic:
            result = evaluate(agent, episodes=SPREAD_EPISODES, seed=SPREAD_SEED)
            return [(SPREAD_SEED + i, r, None) for i, r in enumerate(result["returns"])]
        out = []
        for ep in range(GRID_EPISODES):
            result = evaluate(agent, episodes=1, seed=GRID_SEED + ep)
            out.append((GRID_SEED + ep, result["return_mean"], result["mean_waiting_time"]))
        return out
    finally:
        if hasattr(agent, "close"):
            agent.close()


def run(name: str, seed: int) -> list[dict]:
    import torch

    from robustrl.core.provenance import provenance

    torch.set_num_threads(1)
    spec = RUNS[name]
    load = os.getloadavg()[0]
    wall = time.perf_counter()
    cpu = _cpu_s()
    episodes = (_random_spread() if spec.policy == "random" else
                _fixed_time() if spec.policy == "fixed-time" else _learned(spec, seed))
    wall, cpu = time.perf_counter() - wall, _cpu_s() - cpu
    prov = provenance()
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    learned = spec.steps > 0
    return [{"run": name, "env": spec.env, "policy": spec.policy, "steps": spec.steps,
             "train_seed": seed if learned else "", "episode_seed": ep, "return": repr(float(ret)),
             "mean_waiting_time": "" if wait is None else repr(float(wait)),
             "run_wall_s": f"{wall:.1f}", "run_cpu_s": f"{cpu:.1f}", "load_1min": f"{load:.2f}",
             "date": date, "git_commit": prov["git_commit"], "torch": prov["torch"],
             "pettingzoo": prov["pettingzoo"], "sumo-rl": prov["sumo-rl"],
             "libsumo": prov["libsumo"], "host": platform.node()}
            for ep, ret, wait in episodes]


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (eval workers, subprocesses)."""
    own, children = (resource.getrusage(w) for w in (resource.RUSAGE_SELF,
                                                     resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


# ----------------------------------------------------------------------------- the table
def runs_of(rows: list[dict[str, str]]) -> dict[tuple[str, str], list[dict[str, str]]]:
    """(run name, train seed or "") -> its episode rows, in CSV order."""
    out: dict[tuple[str, str], list[dict[str, str]]] = {}
    for r in rows:
        out.setdefault((r["run"], r["train_seed"]), []).append(r)
    return out


def _std(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def spread_cell(episodes: list[dict[str, str]]) -> str:
    values = [float(r["return"]) for r in episodes]
    return f"{np.mean(values):.1f} ± {_std(values):.1f}"


def wait_cell(episodes: list[dict[str, str]]) -> str:
    values = [float(r["mean_waiting_time"]) for r in episodes]
    return f"{np.mean(values):.2f} s ({' / '.join(f'{v:.2f}' for v in values)})"


def _budget(spec: Spec, seed: str) -> str:
    return "-" if not spec.steps else f"{spec.steps:,} env steps, seed {seed}"


def _cost(episodes: list[dict[str, str]]) -> str:
    r = episodes[0]
    return f"{float(r['run_wall_s']):.0f} ({float(r['run_cpu_s']):.0f})"


def run_score(episodes: list[dict[str, str]]) -> float:
    """A run's score: its mean team return (mpe) or mean waiting time (traffic)."""
    key = "mean_waiting_time" if episodes[0]["mean_waiting_time"] else "return"
    return float(np.mean([float(r[key]) for r in episodes]))


def lines_of(present: list[tuple[str, str, list[dict[str, str]]]], cell: Any) -> list[str]:
    """One table row per run; after a learner's runs, with several seeds, a mean ± std row."""
    out = []
    for name in dict.fromkeys(n for n, _, _ in present):
        seeds = [(s, eps) for n, s, eps in present if n == name]
        out += [f"| {RUNS[name].label} | {_budget(RUNS[name], s)} | {cell(eps)} | "
                f"{_cost(eps)} |" for s, eps in seeds]
        if len(seeds) < 2:
            continue
        scores = [run_score(eps) for _, eps in seeds]
        digits, unit = (2, " s") if seeds[0][1][0]["mean_waiting_time"] else (1, "")
        wall = sum(float(eps[0]["run_wall_s"]) for _, eps in seeds)
        cpu = sum(float(eps[0]["run_cpu_s"]) for _, eps in seeds)
        out.append(f"| **{RUNS[name].label}, {len(seeds)} seeds** | {RUNS[name].steps:,} env "
                   f"steps, seeds {', '.join(s for s, _ in seeds)} | **{np.mean(scores):.{digits}f}"
                   f" ± {_std(scores):.{digits}f}{unit}** | {wall:.0f} ({cpu:.0f}) total |")
    return out


def table(rows: list[dict[str, str]]) -> str:
    """The Markdown results file: a pure function of the CSV rows."""
    runs = runs_of(rows)

    def present(names: list[str]) -> list[tuple[str, str, list[dict[str, str]]]]:
        return sorted(((n, s, eps) for (n, s), eps in runs.items() if n in names),
                      key=lambda x: (names.index(x[0]), x[1]))

    spread = present(["spread-random", "spread-mappo"])
    grid = present(["grid-fixed", "grid-idqn"])
    mfq_names = ["grid-fixed", "grid-mfq", "grid-mfq-dro", "grid-idqn-3k", "grid-idqn-none-3k"]
    mfq = present(mfq_names)
    loads = sorted(float(r["load_1min"]) for r in rows)
    dates = sorted(r["date"] for r in rows)
    commits = sorted({r["git_commit"] for r in rows})
    first = rows[0]
    out = [
        "# Multi-agent learners: learning checks",
        "",
        "    python experiments/multiagent/learning_checks.py",
        "",
        f"Written by `experiments/multiagent/learning_checks.py --from-csv` from `multiagent.csv` "
        f"({len(rows)} rows: one per evaluation episode); `experiments/check_results.py` "
        "recomputes every number below from it. Each learner is built by `make_agent` with "
        "its agents/*.toml settings for the env and trained by `learn`; evaluation is "
        "`robustrl.train.evaluate`, greedy, on held-out episode seeds. The speed measurements "
        "are in `multiagent_speed.md`.",
        "",
        "Run cost: wall s (CPU s of the process and its finished subprocesses) for training "
        "plus evaluation of one run. Machine: the shared 2-core dev box, one experiment "
        "process at a time, torch threads 1, two long benchmark sweeps running meanwhile "
        f"(1-min load average {loads[0]:.2f}-{loads[-1]:.2f} at the start of a run), so wall "
        f"times are inflated. CPU only. Date (UTC): {dates[0]} to {dates[-1]}. Commit "
        f"{', '.join(commits)}; torch {first['torch']}, pettingzoo {first['pettingzoo']}, "
        f"sumo-rl {first['sumo-rl']}, libsumo {first['libsumo']}.",
        "",
    ]
    if spread:
        out += [
            "## MAPPO on mpe/simple_spread (N=3, 25 cycles, discrete actions)",
            "",
            "Team return = sum over the 3 agents of the 25-step episode reward, on "
            f"{SPREAD_EPISODES} evaluation episodes (seeds {SPREAD_SEED}-"
            f"{SPREAD_SEED + SPREAD_EPISODES - 1}), the same episodes for every policy. A run's "
            "row: mean ± sample std over its episodes (episode-to-episode spread). Bold row: "
            "mean ± sample std over the training seeds of the runs' mean returns.",
            "",
            "| policy | budget | team return | wall s (CPU s) |",
            "|---|---|---|---|",
            *lines_of(spread, spread_cell),
            "",
            "MAPPO settings (agents/mappo.toml `mpe/*`): 8 envs x 50 steps per rollout, 5 "
            "epochs, lr 1e-3; 20,000 env steps = 60,000 agent steps.",
            "",
        ]
    if grid:
        out += [
            "## IDQN (QCOMBO mixer) on traffic/2x2grid vs the fixed-time controller",
            "",
            "System mean waiting time (s; sumo-rl's `system_mean_waiting_time` averaged over "
            f"the decision steps of an episode), `num_seconds=1000` (200 decisions); mean over "
            f"the {GRID_EPISODES} held-out episodes (seeds {GRID_SEED}-"
            f"{GRID_SEED + GRID_EPISODES - 1}), the two episodes' values in brackets. Bold "
            "row: mean ± sample std over the training seeds of the runs' means. Fixed-time = "
            "30 s greens cycling through the phases.",
            "",
            "| policy | budget | mean waiting time | wall s (CPU s) |",
            "|---|---|---|---|",
            *lines_of(grid, wait_cell),
            "",
            "IDQN settings (agents/idqn.toml `traffic/*`): ε 1 -> 0.05 over 1,000 steps, "
            "learning from step 500; 2,000 env steps = 10 episodes of 1,000 s.",
            "",
        ]
    if any(n != "grid-fixed" for n, _, _ in mfq):
        out += [
            "## Mean-field Q (`mfq`, distributionally robust target) on traffic/2x2grid",
            "",
            "Same evaluation as the IDQN table (2 held-out episodes, seeds 100-101, "
            "`num_seconds=1000`, clean); agents/mfq.toml's `traffic/*` settings (the schedule "
            "of idqn.toml's), 3,000 env steps. Mean waiting time over the 2 episodes, "
            "their values in brackets; bold row: mean ± sample std over the training seeds of "
            "the runs' means.",
            "",
            "| policy | budget | mean waiting time | wall s (CPU s) |",
            "|---|---|---|---|",
            *lines_of(mfq, wait_cell),
            "",
        ]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="training seeds of the learned runs (default: each run's own)")
    parser.add_argument("--from-csv", action="store_true", help="only rewrite the table")
    args = parser.parse_args()
    if not args.from_csv:
        for name in args.runs:
            spec = RUNS[name]
            seeds = (args.seeds or spec.seeds) if spec.steps else [""]
            for seed in seeds:
                if (name, str(seed)) in runs_of(read_rows()):
                    print(f"{name} seed {seed}: in {CSV.name}, skipped")
                    continue
                rows = run(name, seed)
                write_rows(read_rows() + rows)
                values = [float(r["mean_waiting_time"] or r["return"]) for r in rows]
                print(f"{name} seed {seed}: {np.mean(values):.2f}, {rows[0]['run_wall_s']} s "
                      f"wall, {rows[0]['run_cpu_s']} s CPU", flush=True)
    rows = read_rows()
    if rows:
        TABLE.write_text(table(rows))
        print(f"wrote {TABLE}")


if __name__ == "__main__":
    main()
