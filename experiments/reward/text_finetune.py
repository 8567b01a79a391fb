"""Benchmark (b), fine-tuned: preference losses on real text, all-MiniLM-L6-v2 trained end to end.

The same data, splits, losses and scoring as `text_rm.py` (frozen MiniLM), but the backbone
trains too: HH-RLHF harmless-base and Auto-J pairwise, 80/20 split by prompt (seeds 0–2),
AdamW lr 2e-5, batch 32 pairs, 2 epochs, 256 tokens, linear head on
[e_response, e_prompt ⊙ e_response]. Needs a GPU to finish in minutes (a CPU run of one
fit takes hours). Runs are spread over `--jobs` processes sharing the device; each finished
fit appends its row to `text_finetune.csv` at once and a rerun skips the rows already there.

    python experiments/reward/text_finetune.py --device cuda --jobs 4

writes results/text_finetune.md (and the per-fit rows in results/text_finetune.csv).
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import torch
from common import RESULTS, SHARED_PREFS, header, md_table, mean_std, prefs_file, run, write
from text_rm import DATASETS

METHODS = {  # label -> loss name, loss params (as in text_rm.py)
    "BT": ("bt", {}),
    "margin BT (m = 1)": ("margin-bt", {}),
    "scaled BT (m = 1)": ("scaled-bt", {}),
    "R3M λ=0.5": ("r3m", {"lam": 0.5}),
    "adaptive (τ₀ 0.1, τ_max 4, ρ₀ 0.1)": ("adaptive", {}),
    "Mean-Var": ("meanvar", {}),
}
FIELDS = ["data", "method", "seed", "accuracy", "train_accuracy", "length_baseline",
          "seconds", "device"]


def fit_one(data_name: str, method: str, seed: int, args: dict) -> dict:
    """Fine-tune one model on the train split; score the held-out pairs."""
    from robustrl.reward.data import (
        evaluate_pairs,
        length_baseline,
        load_preferences,
        split_by_prompt,
    )
    from robustrl.reward.losses import MeanVarLoss, make_loss
    from robustrl.reward.models import RewardNetConfig
    from robustrl.reward.text import TextConfig, TextItems, TextRewardModel
    from robustrl.reward.train import Pairs, TrainConfig, fit_preferences, item_rewards

    torch.set_num_threads(1)
    torch.set_float32_matmul_precision("high")  # TF32 matmuls on GPUs that have them
    file, fmt = DATASETS[data_name]
    data = load_preferences(Path(args["data_dir"]) / file, fmt)
    train, test = split_by_prompt(data, 0.2, seed)
    loss_name, params = METHODS[method]
    loss = make_loss(loss_name, **params)
    torch.manual_seed(seed)
    model = TextRewardModel(
        TextConfig(backbone=args["backbone"], max_length=args["max_length"]),
        RewardNetConfig(head="meanvar" if isinstance(loss, MeanVarLoss) else "scalar"),
        finetune=True,
    )
    items = TextItems(data.prompts, data.responses)
    cfg = TrainConfig(epochs=args["epochs"], batch_size=args["batch_size"], lr=args["lr"],
                      seed=seed, device=args["device"])
    result = fit_preferences(model, items, Pairs.from_data(train), loss, cfg)
    r = item_rewards(model, items, 128).float().cpu().numpy()
    return {"data": data_name, "method": method, "seed": seed,
            "accuracy": evaluate_pairs(r[test.chosen], r[test.rejected], test)["accuracy"],
            "train_accuracy": evaluate_pairs(r[train.chosen], r[train.rejected],
                                             train)["accuracy"],
            "length_baseline": length_baseline(test)["accuracy"],
            "seconds": round(result.seconds, 1), "device": args["device"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="all-MiniLM-L6-v2",
                   help="packaged all-MiniLM-L6-v2 or a local copy of it (a model folder)")
    p.add_argument("--data-dir", default=str(SHARED_PREFS))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--csv", default=str(RESULTS / "text_finetune.csv"))
    args = p.parse_args()
    for file, _ in DATASETS.values():  # every input there before any fit starts
        prefs_file(file, args.data_dir)
    started = time.time()
    results = Path(args.csv)
    done = set()
    if results.exists():
        with open(results, newline="") as f:
            done = {(r["data"], r["method"], int(r["seed"])) for r in csv.DictReader(f)}
    else:
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(",".join(FIELDS) + "\n")
    todo = [(d, m, s) for d in DATASETS for s in args.seeds for m in args.methods
            if (d, m, s) not in done]
    shared = {k: getattr(args, k) for k in
              ("backbone", "data_dir", "device", "epochs", "batch_size", "lr", "max_length")}
    with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(fit_one, d, m, s, shared) for d, m, s in todo]
        for fut in as_completed(futures):
            row = fut.result()
            with open(results, "a", newline="") as f:
                csv.DictWriter(f, FIELDS).writerow(row)
            print(json.dumps(row, ensure_ascii=False),
                  f"[{time.time() - started:.0f}s]", flush=True)
    report(results, args, started)


def report(results: Path, args: argparse.Namespace, started: float) -> None:
    acc, train_acc, seconds, length = (defaultdict(list) for _ in range(4))
    devices = set()
    with open(results, newline="") as f:
        for r in csv.DictReader(f):
            key = (r["data"], r["method"])
            acc[key].append(float(r["accuracy"]))
            train_acc[key].append(float(r["train_accuracy"]))
            seconds[key].append(float(r["seconds"]))
            length[r["data"], int(r["seed"])] = float(r["length_baseline"])
            devices.add(r["device"])
    rows = []
    for data in DATASETS:
        base = [v for (d, _), v in length.items() if d == data]
        if base:
            rows.append([data, "length baseline", mean_std(base), "–", "–", len(base)])
        for method in METHODS:
            if (data, method) in acc:
                rows.append([data, method, mean_std(acc[data, method]),
                             mean_std(train_acc[data, method]),
                             f"{np.mean(seconds[data, method]):.0f}", len(acc[data, method])])
    text = header("Text reward models on real preferences (fine-tuned MiniLM)",
                  "python experiments/reward/text_finetune.py --device cuda --jobs 4", started)
    text += (
        f"\nall-MiniLM-L6-v2 fine-tuned end to end (mean pooling, {args.max_length} tokens, "
        "normalised) with a linear head on [e_response, e_prompt ⊙ e_response]; AdamW lr "
        f"{args.lr:g}, batch {args.batch_size} pairs, {args.epochs} epochs; the same 80/20 "
        "splits by prompt, seeds, scoring and length baseline as the frozen table "
        f"(`text.md`); device: {', '.join(sorted(devices))}. mean ± std over seeds.\n\n"
        + md_table(["data", "method", "held-out accuracy", "train accuracy", "train s",
                    "seeds"], rows)
        + "\n\ntrain s = mean seconds of the optimisation loop per fit (several fits share "
        "the device at once, so these are not speed measurements).\n"
    )
    write("text_finetune.md", text)


if __name__ == "__main__":
    run(main)
