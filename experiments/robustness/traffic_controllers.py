"""Fixed-time vs max-pressure on the traffic scenarios the robustness suites use: is the
network loaded enough that control matters (and a robust method has something to recover)?

    python experiments/robustness/traffic_controllers.py --seeds 0 1 2 --num-seconds 1800

writes results/traffic_controllers.csv (one row per scenario x controller x seed: one
episode) and results/traffic_controllers.md (mean over seeds, with the per-seed range).
Each episode runs in-process on libsumo, one after the other.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from robustrl.envs.traffic_baselines import evaluate_controller

HERE = Path(__file__).resolve().parent
SCENARIOS: dict[str, tuple[str, dict]] = {
    "2x2grid (sumo-rl routes)": ("traffic/2x2grid", {}),
    "2x2grid demand_vph=700": ("traffic/2x2grid", {"demand_vph": 700}),
    "grid4x4 (RESCO)": ("traffic/grid4x4", {}),
    "arterial4x4 (RESCO)": ("traffic/arterial4x4", {}),
}
CONTROLLERS = ("fixed-time", "max-pressure")
FIELDS = ["scenario", "env", "env_kwargs", "controller", "seed", "num_seconds",
          "mean_waiting_time", "mean_queue", "throughput", "mean_return", "seconds"]


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


def measure(seeds: list[int], num_seconds: int) -> list[dict]:
    rows = []
    for scenario, (env_id, kwargs) in SCENARIOS.items():
        for controller in CONTROLLERS:
            for seed in seeds:
                t0 = time.perf_counter()
                r = evaluate_controller(env_id, controller, seed=seed, num_seconds=num_seconds,
                                        sumo_seed=seed, **kwargs)
                rows.append({"scenario": scenario, "env": env_id, "env_kwargs": repr(kwargs),
                             "controller": controller, "seed": seed, "num_seconds": num_seconds,
                             **{k: round(r[k], 4) for k in FIELDS[6:10]},
                             "seconds": round(time.perf_counter() - t0, 1)})
                print(scenario, controller, seed, rows[-1]["mean_waiting_time"], flush=True)
    return rows


def table(rows: list[dict]) -> str:
    seeds = sorted({r["seed"] for r in rows})
    length = rows[0]["num_seconds"]
    out = [f"# Fixed-time vs max-pressure ({len(seeds)} seeds: {seeds}; episodes of {length} "
           "simulated seconds, one decision every 5 s)", "",
           "Mean over seeds (min-max over seeds in brackets). Waiting = sumo-rl's system mean "
           "waiting time (s, averaged over decision steps); queue = halting vehicles on the "
           "controlled approaches per step; throughput = vehicles that finished their trip "
           "in the episode. Produced by `python experiments/robustness/traffic_controllers.py "
           f"--seeds {' '.join(map(str, seeds))} --num-seconds {length}` from "
           "`traffic_controllers.csv`.", "",
           "| scenario | controller | waiting (s) | queue (veh) | throughput (veh) |",
           "|---|---|---|---|---|"]
    for scenario in SCENARIOS:
        for controller in CONTROLLERS:
            sel = [r for r in rows if r["scenario"] == scenario and r["controller"] == controller]
            if not sel:
                continue
            cells = []
            for key, fmt in (("mean_waiting_time", "{:.1f}"), ("mean_queue", "{:.1f}"),
                             ("throughput", "{:.0f}")):
                v = np.array([r[key] for r in sel], float)
                cells.append(f"{fmt.format(v.mean())} [{fmt.format(v.min())}-"
                             f"{fmt.format(v.max())}]")
            out.append(f"| {scenario} | {controller} | {' | '.join(cells)} |")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--num-seconds", type=int, default=1800)
    parser.add_argument("--from-csv", action="store_true",
                        help="only rebuild the markdown table from the committed CSV")
    args = parser.parse_args()
    out = HERE / "results"
    csv_path = out / "traffic_controllers.csv"
    if args.from_csv:
        with open(csv_path, newline="") as f:
            rows = [{**r, "seed": int(r["seed"]), "num_seconds": int(r["num_seconds"]),
                     **{k: float(r[k]) for k in FIELDS[6:11]}} for r in csv.DictReader(f)]
    else:
        rows = measure(args.seeds, args.num_seconds)
        lines = [",".join(FIELDS)] + [",".join(_csv_field(r[k]) for k in FIELDS) for r in rows]
        _atomic_write(csv_path, "\n".join(lines) + "\n")
    _atomic_write(out / "traffic_controllers.md", table(rows))


def _csv_field(value: object) -> str:
    text = str(value)
    return f'"{text}"' if "," in text or '"' in text else text


if __name__ == "__main__":
    main()
