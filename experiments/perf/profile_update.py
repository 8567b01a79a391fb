"""Where one gradient update's time goes: SAC / Hybrid SAC on HalfCheetah-v5 (256×256, batch
256, auto entropy, one torch thread), by torch.profiler, ops grouped into kinds; for PPO and
MAPPO also how a training iteration splits into rollout and update.

    python experiments/perf/profile_update.py sac --updates 300
    python experiments/perf/profile_update.py ppo --rollouts 5
    python experiments/perf/profile_update.py mappo --rollouts 20

The replay buffer is filled with `--warmup` random steps, a few updates warm up, then
`--updates` updates are timed plainly (ms per update) and once more under the profiler, whose
per-op self times are summed into: matrix products (forward and backward), Adam, the target
critics' lerp, other tensor ops (ReLU, tanh, losses, their gradients, copies) and autograd /
Python bookkeeping (autograd nodes, optimizer wrappers, everything not a kernel). The profiler
adds its own per-op cost, so the kinds are shares of the profiled time; the plain ms per update
is the figure to compare. For SAC the script also times its 16 large matrix products on their
own (`matmul_floor_ms`): the part of an update no overhead removal can touch. Rows go to
results/profile_update.csv (timings.py's columns + kinds + that floor).

ppo (bench_vs_sb3.py's settings: HalfCheetah-v5, 1 env, 2048-step rollouts, 10 epochs of
minibatch 64, 64×64 tanh) and mappo (mappo_speed.py's: mpe/simple_spread N=3, the mpe/*
settings of agents/mappo.toml) time `--rollouts` iterations of rollout collection (env steps
and acting) and the PPO update on it, then profile the updates of the last rollout; "update"
in the kinds' table is one minibatch gradient step. One row per run goes to
results/profile_onpolicy.csv, with the git commit of the robustrl code that ran (run it with
PYTHONPATH pointing at another checkout to time that code: a before/after).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch
from timings import append, load_1min, stamp
from torch.profiler import ProfilerActivity, profile

MATMUL = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}
ADAM = {"aten::_fused_adam_", "aten::_foreach_add_", "aten::_foreach_mul_",
        "aten::_foreach_addcmul_", "aten::_foreach_lerp_", "aten::_foreach_sqrt",
        "aten::_foreach_div_", "aten::_foreach_addcdiv_", "aten::_foreach_add"}
KINDS = ("matrix products", "Adam", "target lerp", "other tensor ops", "autograd / Python")


def kind(name: str) -> str:
    if name in MATMUL:
        return "matrix products"
    if name == "aten::lerp_":
        return "target lerp"
    if name in ADAM:
        return "Adam"
    if name.startswith("aten::"):
        return "other tensor ops"
    return "autograd / Python"


def kind_shares(prof: profile) -> dict[str, float]:
    self_us: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        self_us[kind(event.key)] += event.self_cpu_time_total
    total = sum(self_us.values())
    return {k: self_us[k] / total for k in KINDS}


def print_kinds(share: dict[str, float], ms: float) -> None:
    print("| kind | share of profiled time | ≈ ms per update |\n|---|---|---|")
    for k in KINDS:
        print(f"| {k} | {share[k]:.0%} | {share[k] * ms:.2f} |")


def matmul_floor_ms(products: int = 16, repeats: int = 200) -> tuple[float, float]:
    """SAC's arithmetic floor: the time of its `products` 256×256 by 256×256 matrix products per
    update (twin critics forward and backward, target critics, actor forward and backward, the
    actor loss's critic pass), each timed as half a (2, 256, 256) batched product, the twin
    critics' shape. Returns (ms per update, GFLOP/s reached)."""
    a, b = torch.randn(2, 256, 256), torch.randn(2, 256, 256)
    for _ in range(20):
        torch.bmm(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.bmm(a, b)
    per_product = (time.perf_counter() - start) / (2 * repeats)
    return products * per_product * 1e3, 2 * 256**3 / per_product / 1e9


def on_policy_agent(algo: str, env: str):  # noqa: ANN201 (a PPO or MAPPO)
    if algo == "ppo":
        from bench_vs_sb3 import PPO_ROLLOUT

        from robustrl.agents import make_agent

        return make_agent("ppo", f"mujoco/{env}", seed=0, n_envs=1, n_steps=PPO_ROLLOUT,
                          n_epochs=10, n_minibatches=PPO_ROLLOUT // 64, hidden=(64, 64),
                          normalize_obs=True, normalize_reward=True)
    from mappo_speed import ENV_ID, ENV_KWARGS

    from robustrl.agents import hyperparameters
    from robustrl.agents.mappo import MAPPO, MAPPOConfig
    from robustrl.core.config import from_dict

    return MAPPO(ENV_ID, from_dict(MAPPOConfig, hyperparameters("mappo", ENV_ID)), seed=0,
                 env_kwargs=ENV_KWARGS)


def on_policy(algo: str, env: str, rollouts: int) -> None:
    """Rollout vs update time over `rollouts` iterations, then the last update profiled."""
    from robustrl.core.provenance import git_commit

    agent = on_policy_agent(algo, env)
    cfg = agent.config
    env_id = "mpe/simple_spread" if algo == "mappo" else env
    steps_per_rollout = cfg.n_envs * cfg.n_steps
    minibatch_steps = cfg.n_epochs * cfg.n_minibatches
    agent.learn(steps_per_rollout)  # opens the envs; the first rollout + update, untimed
    collect_s = update_s = 0.0
    for _ in range(rollouts):
        start = time.perf_counter()
        batch = agent._collect()
        agent.num_steps += steps_per_rollout
        mid = time.perf_counter()
        agent.update(batch)
        collect_s, update_s = collect_s + mid - start, update_s + time.perf_counter() - mid
    ms = update_s / (rollouts * minibatch_steps) * 1e3
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        agent.update(batch)
    share = kind_shares(prof)
    total = collect_s + update_s
    print(f"{algo} on {env_id}: {rollouts} rollouts of {steps_per_rollout} env steps, rollout "
          f"{collect_s:.2f} s ({collect_s / total:.0%}), update {update_s:.2f} s "
          f"({update_s / total:.0%}); {ms:.3f} ms per minibatch step (plain, "
          f"{minibatch_steps} per update; load {load_1min():.2f})")
    print_kinds(share, ms)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    append("profile_onpolicy", {
        **stamp(), "algo": algo, "env": env_id, "code": git_commit(), "rollouts": rollouts,
        "env_steps_per_rollout": steps_per_rollout, "collect_s": f"{collect_s:.4f}",
        "update_s": f"{update_s:.4f}", "minibatch_steps_per_update": minibatch_steps,
        "ms_per_minibatch_step": f"{ms:.4f}", **{k: f"{share[k]:.4f}" for k in KINDS}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("algo", choices=["sac", "hybrid_sac", "ppo", "mappo"])
    parser.add_argument("--env", default="HalfCheetah-v5", help="sac / hybrid_sac / ppo")
    parser.add_argument("--warmup", type=int, default=1000, help="sac: random steps first")
    parser.add_argument("--updates", type=int, default=300, help="sac: timed updates")
    parser.add_argument("--rollouts", type=int, default=5,
                        help="ppo / mappo: timed rollout + update iterations")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.rollouts < 1 or args.updates < 1:
        parser.error("--rollouts and --updates must be >= 1")
    if args.algo in ("ppo", "mappo"):
        on_policy(args.algo, args.env, args.rollouts)
        return
    from robustrl.agents import make_agent

    agent = make_agent(args.algo, f"mujoco/{args.env}", seed=0, learning_starts=args.warmup,
                       batch_size=256, hidden=(256, 256), log_interval=10**9)
    agent.learn(args.warmup)  # random steps only: fills the buffer, no update yet

    def updates(n: int) -> None:
        for _ in range(n):
            agent.update(agent.buffer.sample(256, agent.rng))

    updates(20)
    start = time.perf_counter()
    updates(args.updates)
    ms = (time.perf_counter() - start) / args.updates * 1e3
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        updates(args.updates)
    share = kind_shares(prof)

    floor, gflops = matmul_floor_ms() if args.algo == "sac" else (None, None)
    print(f"{args.algo} on {args.env}: {ms:.2f} ms per update (plain, {args.updates} updates, "
          f"load {load_1min():.2f})")
    if floor is not None:
        print(f"arithmetic floor: its 16 matrix products take {floor:.2f} ms at the "
              f"{gflops:.0f} GFLOP/s one core reaches here ({floor / ms:.0%} of the update)")
    print_kinds(share, ms)
    append("profile_update", {**stamp(), "algo": args.algo, "env": args.env,
                              "updates": args.updates, "ms_per_update": f"{ms:.3f}",
                              **{k: f"{share[k]:.4f}" for k in KINDS},
                              "matmul_floor_ms": "" if floor is None else f"{floor:.3f}"})

if __name__ == "__main__":
    main()
