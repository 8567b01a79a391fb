"""Training throughput of robustrl's SAC / Hybrid SAC / PPO vs Stable-Baselines3, side by side.

Identical settings on both sides, the same env, the same torch thread count:
  sac, hybrid_sac  256x256 actor and critics, batch 256, one gradient step per env step,
                   auto-tuned entropy, Adam 3e-4; `--warmup` random steps first (not timed).
                   (On a Box action space Hybrid SAC is timed against SB3 SAC.)
  ppo              1 env, 2048 steps per rollout, 10 epochs of minibatch 64, 64x64 tanh
                   actor and critic, observation and reward normalization (SB3: VecNormalize);
                   the first rollout + update is the (untimed) warm-up.
The timed phase runs `--steps` env steps. Sides are interleaved in rounds (A B A B ...) so
drifting machine load hits both alike; the ratio of medians is reported. `--raw-env` adds a
third side to each round: the same number of uniform-random actions through
`gymnasium.make(env)` (resets counted), the ceiling any learner on that env stays under. Every
round's timing goes to results/bench_vs_sb3.csv with the date and load average (timings.py).

    python experiments/perf/bench_vs_sb3.py sac --steps 1000 --rounds 3 --threads 1
    python experiments/perf/bench_vs_sb3.py ppo --steps 10240 --rounds 3 --threads 1 --raw-env
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import gymnasium as gym
import torch
from timings import load_1min, record

PPO_ROLLOUT = 2048


def time_robustrl(algo: str, env_id: str, warmup: int, steps: int,
                  seed: int) -> tuple[int, float]:
    from robustrl.agents import make_agent

    if algo == "ppo":
        agent = make_agent("ppo", f"mujoco/{env_id}", seed=seed, n_envs=1, n_steps=PPO_ROLLOUT,
                           n_epochs=10, n_minibatches=PPO_ROLLOUT // 64, hidden=(64, 64),
                           normalize_obs=True, normalize_reward=True)
        warmup = PPO_ROLLOUT - 1
    else:
        agent = make_agent(algo, f"mujoco/{env_id}", seed=seed, learning_starts=warmup,
                           batch_size=256, hidden=(256, 256), log_interval=10**9)
    agent.learn(warmup + 1)  # warm-up (random steps / first rollout) outside the clock
    start, first = time.perf_counter(), agent.num_steps
    agent.learn(first + steps)
    return agent.num_steps - first, time.perf_counter() - start


def time_sb3(algo: str, env_id: str, warmup: int, steps: int, seed: int) -> tuple[int, float]:
    if algo == "ppo":
        from stable_baselines3 import PPO
        from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

        env = VecNormalize(DummyVecEnv([lambda: gym.make(env_id)]))
        model = PPO("MlpPolicy", env, n_steps=PPO_ROLLOUT, batch_size=64, n_epochs=10,
                    seed=seed, verbose=0, device="cpu")
        warmup = PPO_ROLLOUT
    else:
        from stable_baselines3 import SAC

        model = SAC("MlpPolicy", gym.make(env_id), learning_starts=warmup, batch_size=256,
                    train_freq=1, gradient_steps=1, buffer_size=1_000_000, seed=seed,
                    verbose=0, policy_kwargs={"net_arch": [256, 256]}, device="cpu")
        warmup += 1
    model.learn(warmup)
    start, first = time.perf_counter(), model.num_timesteps
    model.learn(steps, reset_num_timesteps=False)
    return model.num_timesteps - first, time.perf_counter() - start


def time_raw_env(env_id: str, steps: int, seed: int) -> tuple[int, float]:
    """Uniform-random actions through the registered Gymnasium env, resets counted."""
    env = gym.make(env_id)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return steps, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("algo", choices=["sac", "hybrid_sac", "ppo"])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--steps", type=int, default=2000, help="timed env steps per round")
    parser.add_argument("--warmup", type=int, default=1000, help="sac: random steps first")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--raw-env", action="store_true",
                        help="also time random actions through gymnasium.make(env) each round")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    what = f"{args.algo} {args.env}"
    ours, theirs, raw = [], [], []
    for r in range(args.rounds):
        ours.append(record("bench_vs_sb3", what, "robustrl", r,
                           *time_robustrl(args.algo, args.env, args.warmup, args.steps, r)))
        theirs.append(record("bench_vs_sb3", what, "sb3", r,
                             *time_sb3(args.algo, args.env, args.warmup, args.steps, r)))
        if args.raw_env:
            raw.append(record("bench_vs_sb3", what, "raw env", r,
                              *time_raw_env(args.env, args.steps, r)))
        print(f"round {r}: robustrl {ours[-1]:.1f} steps/s, SB3 {theirs[-1]:.1f} steps/s"
              + (f", raw env {raw[-1]:.0f} steps/s" if raw else ""), flush=True)
    result = {
        "algo": args.algo, "env": args.env, "threads": args.threads, "timed_steps": args.steps,
        "robustrl_steps_per_s": statistics.median(ours),
        "sb3_steps_per_s": statistics.median(theirs),
        "ratio": statistics.median(ours) / statistics.median(theirs),
        "median_round_ratio": statistics.median(o / t for o, t in zip(ours, theirs)),
        "torch": torch.__version__, "load_1min_at_end": load_1min(),
    }
    reference = "PPO" if args.algo == "ppo" else "SAC"
    print(f"robustrl {args.algo} {result['robustrl_steps_per_s']:.1f} steps/s vs SB3 {reference} "
          f"{result['sb3_steps_per_s']:.1f} steps/s -> ratio {result['ratio']:.2f}x "
          f"({args.env}, {args.threads} thread(s), median of {args.rounds} rounds; median of the "
          f"rounds' ratios {result['median_round_ratio']:.2f}x; load {load_1min():.2f})")
    if raw:
        result["raw_env_steps_per_s"] = statistics.median(raw)
        result["fraction_of_raw_env"] = statistics.median(ours) / statistics.median(raw)
        fractions = [o / w for o, w in zip(ours, raw)]
        print(f"robustrl {args.algo} at {result['fraction_of_raw_env']:.2f}x the raw env's "
              f"random-action speed ({result['robustrl_steps_per_s']:.1f} vs "
              f"{result['raw_env_steps_per_s']:.0f} steps/s; median of the rounds' ratios "
              f"{statistics.median(fractions):.2f}x, lowest {min(fractions):.2f}x, highest "
              f"{max(fractions):.2f}x)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
