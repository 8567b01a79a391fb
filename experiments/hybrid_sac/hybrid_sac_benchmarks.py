"""Hybrid SAC benchmarks: Platform return, Goal P(score), hybrid traffic vs fixed-time, speed.

Hyperparameters come from `agents/hybrid_sac.toml` (the env id's section); `--set key=value`
overrides them. After training, the deterministic policy is evaluated on fresh seeds.

    python experiments/hybrid_sac/hybrid_sac_benchmarks.py platform --steps 50000 --seed 0
    python experiments/hybrid_sac/hybrid_sac_benchmarks.py goal --steps 120000 --seed 0
    python experiments/hybrid_sac/hybrid_sac_benchmarks.py traffic --steps 15000 --seed 0
    python experiments/hybrid_sac/hybrid_sac_benchmarks.py speed --steps 300  # vs SAC, Box env
    python experiments/hybrid_sac/hybrid_sac_benchmarks.py table  # results .md from the CSV

Every evaluation episode (and, for `speed`, every timed round) becomes one row of
`results/hybrid_sac.csv`, written atomically as soon as that evaluation finishes (the
learning-curve evaluations during training too), so an interrupted run keeps what it measured.
A rerun of the same (task, controller, seed, steps, overrides, env kwargs) replaces that run's
rows. `results/hybrid_sac.md` is then regenerated from the whole CSV (`render`, a pure
function of the rows; `table` does only that), and `experiments/check_results.py` recomputes
its numbers. Targets (spec): Platform mean return >= 0.95 (paper 0.981), Goal P(score) >= 0.5
(paper 0.728), traffic mean waiting time below the fixed-time controller's.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
CSV_PATH = HERE / "results" / "hybrid_sac.csv"
MD_PATH = HERE / "results" / "hybrid_sac.md"
ENV_IDS = {"platform": "hybrid/platform", "goal": "hybrid/goal",
           "traffic": "hybrid/traffic-single-intersection", "speed": "gym/Pendulum-v1"}
FINAL_SEED, CURVE_SEED = 10_000, 20_000  # evaluation seeds: final and learning-curve episodes
# One row per evaluation episode (speed: per timed round). A run is identified by RUN_KEY.
FIELDS = ["task", "env", "controller", "overrides", "env_kwargs", "seed", "steps", "phase",
          "at_step", "episode", "eval_seed", "return", "length", "scored", "wait_time_weighted",
          "wait_per_decision", "throughput", "steps_per_second", "train_seconds", "date",
          "load_start", "load_end", "threads", "commit"]
RUN_KEY = ("task", "controller", "overrides", "env_kwargs", "seed", "steps")


# ----------------------------------------------------------------------------- raw rows
def _commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(HERE), "status", "--porcelain", "--",
                                ":/robustrl", ":/agents", Path(__file__).name],
                               capture_output=True, text=True).stdout
        return out + ("-dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return ""


def read_rows(path: Path = CSV_PATH) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


class RowWriter:
    """Appends one run's rows to the CSV; the first write drops that run's older rows (a rerun
    replaces them). Every write rewrites the file through a temp file + rename."""

    def __init__(self, path: Path, run: dict[str, Any], threads: int):
        self.path, self.replaced = path, False
        self.run = {k: str(v) for k, v in run.items()}
        self.meta = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                     "load_start": f"{os.getloadavg()[0]:.2f}", "threads": str(threads),
                     "commit": _commit()}

    def write(self, rows: Iterable[dict[str, Any]]) -> None:
        from robustrl.core.io import atomic_write_text

        old = read_rows(self.path)
        if not self.replaced:
            old = [r for r in old if any(r[k] != self.run[k] for k in RUN_KEY)]
            self.replaced = True
        load = f"{os.getloadavg()[0]:.2f}"
        new = [{**{k: "" for k in FIELDS}, **self.run, **self.meta, "load_end": load,
                **{k: _cell(v) for k, v in r.items()}} for r in rows]
        buf = io.StringIO()
        w = csv.DictWriter(buf, FIELDS, lineterminator="\n")
        w.writeheader()
        w.writerows(old + new)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, buf.getvalue())


def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, float):
        return repr(v)
    return str(v)


# ----------------------------------------------------------------------------- training
def config_for(env_id: str, overrides: dict[str, Any]) -> Any:
    from robustrl.agents import hyperparameters
    from robustrl.agents.hybrid_sac import HybridSACConfig
    from robustrl.core.config import from_dict, replace

    cfg = from_dict(HybridSACConfig, hyperparameters("hybrid_sac", env_id), prefix="agent.")
    return replace(cfg, overrides, prefix="agent.")


def progress(every: int, eval_every: int = 0, save: str | None = None,
             writer: RowWriter | None = None) -> Callable[..., None]:
    """Callback printing one line per `every` steps (flushed, so a nohup log shows progress);
    every `eval_every` steps also a 20-episode deterministic evaluation (seeds 20000-20019)
    whose episodes go to `writer` as phase "curve" and, with `save`, a checkpoint."""
    start = time.perf_counter()

    def callback(agent: Any, metrics: dict[str, float]) -> None:
        if agent.num_steps % every == 0:
            shown = {k: round(v, 4) for k, v in metrics.items()}
            print(f"[{time.perf_counter() - start:7.0f}s] step {agent.num_steps} {shown}",
                  flush=True)
        if eval_every and agent.num_steps % eval_every == 0:
            episodes = evaluate_episodes(agent, 20, seed=CURVE_SEED)
            print(f"[{time.perf_counter() - start:7.0f}s] eval step {agent.num_steps} "
                  f"{summary(episodes)}", flush=True)
            if writer is not None:
                elapsed = time.perf_counter() - start
                writer.write({**e, "phase": "curve", "at_step": agent.num_steps,
                              "train_seconds": elapsed} for e in episodes)
            if save:
                agent.save(save)

    return callback


def evaluate_episodes(agent: Any, episodes: int, seed: int) -> list[dict[str, Any]]:
    """Deterministic episodes on seeds seed, seed+1, ...: return, length, info['scored']."""
    env = agent.env_fn()
    rows = []
    try:
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed + ep)
            done, total, length, info = False, 0.0, 0, {}
            while not done:
                obs, reward, terminated, truncated, info = env.step(agent.act(obs))
                total += float(reward)
                length += 1
                done = terminated or truncated
            rows.append({"episode": ep, "eval_seed": seed + ep, "return": total,
                         "length": length, "scored": bool(info.get("scored", False))})
    finally:
        env.close()
    return rows


def summary(episodes: list[dict[str, Any]]) -> dict[str, float]:
    returns = [e["return"] for e in episodes]
    return {"return_mean": float(np.mean(returns)),
            "p_score": float(np.mean([e["scored"] for e in episodes])),
            "eval_episodes": len(episodes)}


def run_parameterized(name: str, args: argparse.Namespace) -> dict[str, Any]:
    from robustrl.agents.hybrid_sac import HybridSAC

    env_id = ENV_IDS[name]
    writer = RowWriter(args.csv, {"task": name, "env": env_id, "controller": "hybrid_sac",
                                  "overrides": " ".join(args.set), "env_kwargs": "",
                                  "seed": args.seed, "steps": args.steps}, args.threads)
    agent = HybridSAC(env_id, config_for(env_id, args.overrides), seed=args.seed)
    start = time.perf_counter()
    agent.learn(args.steps, progress(args.log_every, args.eval_every, args.save, writer))
    seconds = time.perf_counter() - start
    if args.save:
        agent.save(args.save)
    episodes = evaluate_episodes(agent, args.eval_episodes, seed=FINAL_SEED)
    writer.write({**e, "phase": "final", "at_step": agent.num_steps, "train_seconds": seconds}
                 for e in episodes)
    return {"env": env_id, "steps": args.steps, "seed": args.seed, "train_seconds": seconds,
            **summary(episodes)}


# ----------------------------------------------------------------------------- traffic
class FixedCycle:
    """Fixed-time control in the hybrid action format: next phase in turn, `green` seconds."""

    def __init__(self, env: Any, green: float = 30.0):
        self.space = env.action_space
        self.green, self.k = green, -1

    def reset(self) -> None:
        self.k = -1

    def __call__(self, obs: Any) -> Any:
        self.k = (self.k + 1) % self.space[0].n
        params = tuple(np.full(b.shape, self.green, np.float32) for b in self.space[1])
        return self.k, params


class RandomPolicy:
    """Uniform random phase and green time: the floor any learned controller should clear."""

    def __init__(self, env: Any, seed: int = 0):
        self.space = env.action_space
        self.space.seed(seed)

    def __call__(self, obs: Any) -> Any:
        return self.space.sample()


def traffic_episodes(env_id: str, make_policy: Callable[[Any], Any], episodes: int, seed: int,
                     **env_kwargs: Any) -> list[dict[str, Any]]:
    """One row per episode: sumo-rl's system mean waiting time (s) averaged per decision (what
    `evaluate_controller` reports) and, where the env reports `step_seconds` (the hybrid env),
    weighted by each decision's simulated seconds; throughput = vehicles arrived.

    Hybrid steps last 5-50 s, so the per-decision average over-weights short greens; the
    time-weighted one is what the fixed-time controller's uniform 5-s steps measure.
    """
    from robustrl.envs import make

    env = make(env_id, **env_kwargs)
    rows = []
    try:
        policy = make_policy(env)
        for ep in range(episodes):
            obs, info = env.reset(seed=seed + ep)
            if hasattr(policy, "reset"):
                policy.reset()
            weighted = seconds = per_decision = total = 0.0
            steps, done = 0, False
            while not done:
                obs, reward, terminated, truncated, info = env.step(policy(obs))
                wait = float(info["system_mean_waiting_time"])
                per_decision += wait
                if "step_seconds" in info:
                    weighted += wait * info["step_seconds"]
                    seconds += info["step_seconds"]
                total += float(reward)
                steps += 1
                done = terminated or truncated
            rows.append({"episode": ep, "eval_seed": seed + ep, "return": total,
                         "length": steps, "wait_per_decision": per_decision / steps,
                         "wait_time_weighted": weighted / seconds if seconds else "",
                         "throughput": float(info["system_arrived"])})
    finally:
        env.close()
    return rows


def run_traffic(args: argparse.Namespace) -> dict[str, Any]:
    from robustrl.agents.hybrid_sac import HybridSAC
    from robustrl.envs.traffic_baselines import make_controller

    env_id = ENV_IDS["traffic"]
    env_kwargs = {"num_seconds": args.num_seconds}
    kwargs_text = f"num_seconds={args.num_seconds}"
    evals = {"episodes": args.eval_episodes, "seed": FINAL_SEED, **env_kwargs}
    result: dict[str, Any] = {}
    baselines = {"fixed-time": ("traffic/single-intersection",
                                lambda env: make_controller("fixed-time", env)),
                 "fixed-cycle-30s": (env_id, FixedCycle), "uniform-random": (env_id, RandomPolicy)}
    done = {(r["controller"], r["env_kwargs"]) for r in read_rows(args.csv)
            if r["task"] == "traffic" and r["phase"] == "final"}
    for name, (baseline_env, policy) in baselines.items():
        if (name, kwargs_text) in done and not args.rerun_baselines:
            continue  # they do not depend on the training seed
        writer = RowWriter(args.csv, {"task": "traffic", "env": baseline_env, "controller": name,
                                      "overrides": "", "env_kwargs": kwargs_text, "seed": "",
                                      "steps": 0}, args.threads)
        episodes = traffic_episodes(baseline_env, policy, **evals)
        writer.write({**e, "phase": "final", "at_step": 0} for e in episodes)
        result[name] = _traffic_summary(episodes)
        print(json.dumps({name: result[name]}), flush=True)
    writer = RowWriter(args.csv, {"task": "traffic", "env": env_id, "controller": "hybrid_sac",
                                  "overrides": " ".join(args.set), "env_kwargs": kwargs_text,
                                  "seed": args.seed, "steps": args.steps}, args.threads)
    agent = HybridSAC(env_id, config_for(env_id, args.overrides), seed=args.seed,
                      env_kwargs=env_kwargs)
    start = time.perf_counter()
    agent.learn(args.steps, progress(args.log_every))
    seconds = time.perf_counter() - start
    agent.env.close()  # one SUMO simulation per process at a time
    episodes = traffic_episodes(env_id, lambda env: agent.act, **evals)
    writer.write({**e, "phase": "final", "at_step": agent.num_steps, "train_seconds": seconds}
                 for e in episodes)
    result["hybrid_sac"] = _traffic_summary(episodes)
    return {"env": env_id, "steps": args.steps, "seed": args.seed, "train_seconds": seconds,
            **env_kwargs, **result}


def _traffic_summary(episodes: list[dict[str, Any]]) -> dict[str, float]:
    out = {k: float(np.mean([e[k] for e in episodes]))
           for k in ("wait_per_decision", "throughput")}
    if episodes[0]["wait_time_weighted"] != "":
        out["wait_time_weighted"] = float(np.mean([e["wait_time_weighted"] for e in episodes]))
    return out


# ----------------------------------------------------------------------------- speed
def run_speed(args: argparse.Namespace) -> dict[str, Any]:
    """Steps/s of Hybrid SAC vs robustrl SAC on the same Box env and settings, interleaved."""
    from robustrl.agents.hybrid_sac import HybridSAC, HybridSACConfig
    from robustrl.agents.sac import SAC, SACConfig

    env_id, warmup = ENV_IDS["speed"], 500
    shared = {"batch_size": 256, "hidden": (256, 256), "learning_starts": warmup,
              "log_interval": 10**9}
    run = {"task": "speed", "env": env_id, "overrides": "batch_size=256 hidden=256,256",
           "env_kwargs": "", "seed": args.seed, "steps": args.steps}
    writers = {name: RowWriter(args.csv, {**run, "controller": name}, args.threads)
               for name in ("sac", "hybrid_sac")}
    times: dict[str, list[float]] = {"sac": [], "hybrid_sac": []}
    for round_ in range(args.rounds):
        for name in times:
            if name == "sac":
                agent = SAC(env_id, SACConfig(**shared), seed=args.seed)
            else:
                agent = HybridSAC(env_id, HybridSACConfig(**shared), seed=args.seed)
            agent.learn(warmup + 1)
            start = time.perf_counter()
            agent.learn(warmup + 1 + args.steps)
            seconds = time.perf_counter() - start
            times[name].append(args.steps / seconds)
            writers[name].write([{"phase": "round", "episode": round_, "train_seconds": seconds,
                                  "steps_per_second": args.steps / seconds}])
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"env": env_id, "steps": args.steps, "rounds": args.rounds, "steps_per_second": med,
            "ratio_hybrid_over_sac": med["hybrid_sac"] / med["sac"]}


# ----------------------------------------------------------------------------- the table
def _runs(rows: list[dict[str, str]], task: str, phase: str) -> dict[tuple, list[dict]]:
    """RUN_KEY -> that run's rows of `phase`, in CSV order, for one task."""
    runs: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        if r["task"] == task and r["phase"] == phase:
            runs[tuple(r[k] for k in RUN_KEY)].append(r)
    return runs


def _seed_order(key: tuple) -> tuple:
    task, controller, overrides, env_kwargs, seed, steps = key
    return (overrides, int(steps), int(seed) if seed else -1, controller)


def _f(rows: list[dict], col: str) -> list[float]:
    return [float(r[col]) for r in rows]


def _sd(x: list[float]) -> float:
    return float(np.std(x, ddof=1)) if len(x) > 1 else 0.0


def _seeds(rows: list[dict]) -> str:
    s = [int(r["eval_seed"]) for r in rows]
    return f"{len(s)} ({min(s)}–{max(s)})"


def _meta(rows: list[dict]) -> str:
    r = rows[-1]
    loads = sorted({float(x["load_start"]) for x in rows} | {float(x["load_end"]) for x in rows})
    return f"{r['date'][:10]}, load {loads[0]:.1f}–{loads[-1]:.1f}"


def _curve_table(curve: list[dict], metric: str) -> list[str]:
    points: dict[int, list[dict]] = defaultdict(list)
    for r in curve:
        points[int(r["at_step"])].append(r)
    steps = sorted(points)
    value = {"return": lambda rs: f"{np.mean(_f(rs, 'return')):.3f}",
             "p_score": lambda rs: f"{np.mean(_f(rs, 'scored')):.2f}"}[metric]
    return ["| steps | " + " | ".join(f"{s // 1000}k" for s in steps) + " |",
            "|---|" + "---|" * len(steps),
            f"| {'return' if metric == 'return' else 'P(score)'} | "
            + " | ".join(value(points[s]) for s in steps) + " |"]


COMMANDS = {
    "platform": "python experiments/hybrid_sac/hybrid_sac_benchmarks.py platform --steps 50000 "
                "--seed 0 --eval-episodes 100 --log-every 2000 --eval-every 5000",
    "goal": "python experiments/hybrid_sac/hybrid_sac_benchmarks.py goal --steps 120000 "
            "--seed 0 --eval-episodes 100 --log-every 5000 --eval-every 10000",
    "traffic": "python experiments/hybrid_sac/hybrid_sac_benchmarks.py traffic --steps 15000 "
               "--seed S --eval-episodes 2",
    "speed": "python experiments/hybrid_sac/hybrid_sac_benchmarks.py speed --steps 300 "
             "--rounds 3",
}
# Cost of each command above when it is not in the CSV (one torch thread, CPU time): Platform
# 50k and traffic 15k measured here on 2026-12-03 (6.2 and 2.5 core-minutes); Goal from the
# ~7.5 ms of CPU per training step of Platform 50k and of a 2k-step Goal run.
NOT_RERUN = {
    "platform": "about 6 core-minutes",
    "goal": "about 15 core-minutes (more than this session's budget had left)",
    "traffic": "about 2.5 core-minutes per seed plus half a minute for the baselines",
    "speed": "about 1 core-minute",
}
WITHDRAWN = {
    "goal": "The earlier P(score) 0.61 (a 200k-step run stopped at 120k, seed 0) came from an "
            "uncommitted evaluation snippet and has no raw rows; it is withdrawn.",
    "speed": "The earlier figures (SAC 6.5, Hybrid SAC 7.2 steps/s, ratio 1.10) have no raw "
             "rows; they are withdrawn.",
}
TRAFFIC_NOT_RERUN = (
    "Earlier 6,000-step runs (seeds 0 and 1 at gamma 0.9, and seed 0 with `--set gamma=0.99`, "
    "the run that made gamma 0.9 per decision the TOML default) have no raw rows and were not "
    "rerun in this session: `python experiments/hybrid_sac/hybrid_sac_benchmarks.py traffic "
    "--steps 6000 --seed S --eval-episodes 2 [--set gamma=0.99]` produces them, about 1 "
    "core-minute each.")
HEADER = """# Hybrid SAC — benchmark results

Generated from the per-episode rows in `hybrid_sac.csv` (one row per evaluation episode, per
learning-curve evaluation episode and per timed speed round) by
`python experiments/hybrid_sac/hybrid_sac_benchmarks.py table`; every run of the script
rewrites this file. `python experiments/check_results.py` recomputes the numbers below from
the CSV. Script: `experiments/hybrid_sac/hybrid_sac_benchmarks.py`; hyperparameters:
`agents/hybrid_sac.toml` (section `"hybrid/*"` = the third-party Platform settings — one hidden
layer of 128, policy lr 1e-4, Q lr 1e-3, gamma 0.9, tau 0.1, batch 128, buffer 10k, log-std in
[-3, 0] — plus `alpha_init = 0.2`, `alpha_lr = 1e-3`, `learning_starts = 1000`). One torch
thread per run, one run at a time. Machine: 2 CPU cores shared with other jobs; "load" is the
1-minute load average (`os.getloadavg`) at the start and end of each evaluation, so wall times
are those of a loaded machine; "train wall time" includes the learning-curve evaluations run
during training. Evaluation: deterministic policy (argmax discrete, tanh(mean)
parameters) on fresh seeds (final: 10000 on, learning curve: 20000–20019). Means are over the
evaluation episodes of one training seed; "std" is the sample standard deviation (ddof 1) over
those episodes, not a spread across training seeds."""


def render(rows: list[dict[str, str]]) -> str:
    """The whole results Markdown from the CSV rows (a pure function of them)."""
    out = [HEADER]
    out += _render_parameterized(rows, "platform")
    out += _render_parameterized(rows, "goal")
    out += _render_traffic(rows)
    out += _render_speed(rows)
    return "\n".join(out) + "\n"


def _not_rerun(task: str) -> str:
    return (f"Not rerun in this session (no rows in `hybrid_sac.csv`): `{COMMANDS[task]}` "
            f"produces them, at an estimated {NOT_RERUN[task]}. " + WITHDRAWN.get(task, "")
            ).strip()


def _render_parameterized(rows: list[dict[str, str]], task: str) -> list[str]:
    goal = task == "goal"
    out = ["", ("## Goal (`hybrid/goal`) — target P(score) ≥ 0.5 (paper 0.728)" if goal else
                "## Platform (`hybrid/platform`) — target mean return ≥ 0.95 (paper 0.981)"), ""]
    finals, curves = _runs(rows, task, "final"), _runs(rows, task, "curve")
    if not finals and not curves:
        return out + [_not_rerun(task)]
    out += [f"    {COMMANDS[task]}", "",
            "| seed | overrides | budget (env steps) | eval episodes (seeds) | "
            + ("P(score) | " if goal else "") + "mean return | std | mean episode length | "
            "train wall time (s) | date, load |",
            "|---|---|---|---|" + ("---|" if goal else "") + "---|---|---|---|---|"]
    for key in sorted(finals, key=_seed_order):
        rs = finals[key]
        ret = _f(rs, "return")
        cells = [key[4], key[2] or "–", f"{int(key[5]):,}", _seeds(rs)]
        if goal:
            cells.append(f"{np.mean(_f(rs, 'scored')):.2f}")
        cells += [f"{np.mean(ret):.3f}", f"{_sd(ret):.3f}", f"{np.mean(_f(rs, 'length')):.2f}",
                  f"{float(rs[0]['train_seconds']):.0f}", _meta(rs)]
        out.append("| " + " | ".join(cells) + " |")
    for key in sorted(curves, key=_seed_order):
        if key not in finals:
            out += ["", f"Seed {key[4]} ({int(key[5]):,} steps) has learning-curve rows but no "
                    "final evaluation: the run was interrupted."]
        out += ["", f"Learning curve of seed {key[4]}"
                + (f" ({key[2]})" if key[2] else "") + " (20 deterministic episodes, seeds "
                "20000–20019, at each point):", ""]
        out += _curve_table(curves[key], "p_score" if goal else "return")
    target = 0.5 if goal else 0.95
    for key in sorted(finals, key=_seed_order):
        value = np.mean(_f(finals[key], "scored" if goal else "return"))
        out += ["", f"Seed {key[4]}, {int(key[5]):,} steps: "
                f"{'P(score)' if goal else 'mean return'} {value:{'.2f' if goal else '.3f'}} — "
                f"target {target} {'reached' if value >= target else 'not reached'}."]
    seeds = {k[4] for k in finals}
    if len(seeds) < 2:
        out += ["", "One training seed only: no spread across seeds is claimed."]
    return out


TRAFFIC_LABELS = {
    "fixed-time": "fixed-time 30 s, `traffic/single-intersection` (`FixedTimeController`, "
                  "uniform 5-s steps)",
    "fixed-cycle-30s": "fixed cycle 30 s green, hybrid env",
    "uniform-random": "uniform random phase + green, hybrid env",
    "hybrid_sac": "Hybrid SAC",
}


def _render_traffic(rows: list[dict[str, str]]) -> list[str]:
    out = ["", "## Hybrid traffic (`hybrid/traffic-single-intersection`) — target: below "
           "fixed-time waiting", ""]
    finals = _runs(rows, "traffic", "final")
    if not finals:
        return out + [_not_rerun("traffic")]
    out += [f"    {COMMANDS['traffic']}", "",
            "sumo-rl's system mean waiting time (s): \"per decision\" averages it over decision "
            "steps (what `evaluate_controller` reports); hybrid steps last 5–50 s, which "
            "over-weights short greens, so \"time-weighted\" weights each decision by its "
            "simulated seconds — what the fixed-time controller's uniform 5-s steps measure. "
            "Throughput = vehicles that completed their trip per episode. Each cell is the mean "
            "over the evaluation episodes (seeds 10000 on); baselines do not depend on a "
            "training seed.", "",
            "| controller | overrides | env kwargs | steps | seed | eval episodes | mean waiting, "
            "time-weighted (s) | per decision (s) | throughput (veh) | train wall time (s) | "
            "date, load |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    order = list(TRAFFIC_LABELS)
    keys = sorted(finals, key=lambda k: (order.index(k[1]), *_seed_order(k)))
    for key in keys:
        rs = finals[key]
        weighted = f"{np.mean(_f(rs, 'wait_time_weighted')):.2f}" \
            if rs[0]["wait_time_weighted"] else "–"
        train = f"{float(rs[0]['train_seconds']):.0f}" if rs[0]["train_seconds"] else "–"
        out.append("| " + " | ".join([
            TRAFFIC_LABELS[key[1]], key[2] or "–", key[3], f"{int(key[5]):,}" if key[4] else "–",
            key[4] or "–", str(len(rs)), weighted, f"{np.mean(_f(rs, 'wait_per_decision')):.2f}",
            f"{np.mean(_f(rs, 'throughput')):.0f}", train, _meta(rs)]) + " |")
    fixed = [finals[k] for k in keys if k[1] == "fixed-time"]
    if fixed:
        ref = np.mean(_f(fixed[0], "wait_per_decision"))
        for key in keys:
            if key[1] == "hybrid_sac":
                value = np.mean(_f(finals[key], "wait_time_weighted"))
                out += ["", f"Hybrid SAC seed {key[4]}, {int(key[5]):,} steps"
                        + (f" ({key[2]})" if key[2] else "") + f": {value:.2f} s vs fixed-time "
                        f"{ref:.2f} s — {'below' if value < ref else 'not below'} fixed-time."]
    if len({k[4] for k in keys if k[1] == "hybrid_sac"}) < 3:
        out += ["", "Two evaluation episodes and at most two training seeds: no spread "
                "across seeds is claimed."]
    return out + ["", TRAFFIC_NOT_RERUN]


def _render_speed(rows: list[dict[str, str]]) -> list[str]:
    out = ["", "## Speed: Hybrid SAC vs robustrl SAC on a Box env", ""]
    runs = _runs(rows, "speed", "round")
    if not runs:
        return out + [_not_rerun("speed"), "", "The HalfCheetah-v5 vs SB3 comparison of issue 6 "
                      "item 3 is `experiments/perf/bench_vs_sb3.py`."]
    med = {k[1]: float(np.median(_f(rs, "steps_per_second"))) for k, rs in runs.items()}
    rs_all = [r for rs in runs.values() for r in rs]
    rounds = {k[1]: " / ".join(f"{x:.1f}" for x in _f(rs, "steps_per_second"))
              for k, rs in runs.items()}
    return out + [f"    {COMMANDS['speed']}", "",
                  "`gym/Pendulum-v1`, both agents 256x256, batch 256, one update per env step, "
                  "one thread, interleaved rounds; steps/s of the timed steps after a 500-step "
                  "warm-up.", "",
                  "| agent | steps/s per round | median steps/s |", "|---|---|---|",
                  f"| SAC | {rounds['sac']} | {med['sac']:.1f} |",
                  f"| Hybrid SAC | {rounds['hybrid_sac']} | {med['hybrid_sac']:.1f} |", "",
                  f"Ratio of medians Hybrid SAC / SAC: {med['hybrid_sac'] / med['sac']:.2f} "
                  f"({_meta(rs_all)}). Absolute numbers reflect the loaded shared machine."]


def write_table(csv_path: Path = CSV_PATH, md_path: Path = MD_PATH) -> None:
    from robustrl.core.io import atomic_write_text

    atomic_write_text(md_path, render(read_rows(csv_path)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=["platform", "goal", "traffic", "speed", "table"])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--num-seconds", type=int, default=3600,
                        help="traffic: simulated seconds per episode")
    parser.add_argument("--rerun-baselines", action="store_true",
                        help="traffic: rerun the baselines even if the CSV has their rows")
    parser.add_argument("--rounds", type=int, default=3, help="speed: interleaved rounds")
    parser.add_argument("--log-every", type=int, default=5000)
    parser.add_argument("--eval-every", type=int, default=10_000,
                        help="platform/goal: steps between 20-episode evaluations (0: none)")
    parser.add_argument("--save", default=None, help="platform/goal: checkpoint path")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--csv", type=Path, default=CSV_PATH, help="raw rows (appended)")
    parser.add_argument("--md", type=Path, default=MD_PATH, help="table regenerated from --csv")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="hyperparameter overrides, e.g. --set gamma=0.95")
    args = parser.parse_args()
    if args.task == "table":
        write_table(args.csv, args.md)
        return
    import torch

    from robustrl.core.config import parse_assignments

    args.overrides = parse_assignments(args.set)
    torch.set_num_threads(args.threads)
    if args.task == "traffic":
        result = run_traffic(args)
    elif args.task == "speed":
        result = run_speed(args)
    else:
        result = run_parameterized(args.task, args)
    write_table(args.csv, args.md)
    print(json.dumps({"task": args.task, **result}), flush=True)


if __name__ == "__main__":
    main()
