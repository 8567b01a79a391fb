"""Where one gradient update's time goes: SAC / Hybrid SAC on HalfCheetah-v5 (256×256, batch
256, auto entropy, one torch thread), by torch.profiler, ops grouped into kinds.

    python experiments/perf/profile_update.py sac --updates 300

The replay buffer is filled with `--warmup` random steps, a few updates warm up, then
`--updates` updates are timed plainly (ms per update) and once more under the profiler, whose
per-op self times are summed into: matrix products (forward and backward), Adam, the target
critics' lerp, other tensor ops (ReLU, tanh, losses, their gradients, copies) and autograd /
Python bookkeeping (autograd nodes, optimizer wrappers, everything not a kernel). The profiler
adds its own per-op cost, so the kinds are shares of the profiled time; the plain ms per update
is the figure to compare. Rows go to results/profile_update.csv (timings.py's columns + kinds).
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("algo", choices=["sac", "hybrid_sac"])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--updates", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
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
    self_us: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        self_us[kind(event.key)] += event.self_cpu_time_total
    total = sum(self_us.values())
    share = {k: self_us[k] / total for k in KINDS}

    print(f"{args.algo} on {args.env}: {ms:.2f} ms per update (plain, {args.updates} updates, "
          f"load {load_1min():.2f})")
    print("| kind | share of profiled time | ≈ ms per update |\n|---|---|---|")
    for k in KINDS:
        print(f"| {k} | {share[k]:.0%} | {share[k] * ms:.2f} |")
    append("profile_update", {**stamp(), "algo": args.algo, "env": args.env,
                              "updates": args.updates, "ms_per_update": f"{ms:.3f}",
                              **{k: f"{share[k]:.4f}" for k in KINDS}})

if __name__ == "__main__":
    main()
