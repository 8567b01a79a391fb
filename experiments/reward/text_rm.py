"""Benchmark (b): preference losses on real text with a frozen MiniLM head.

HH-RLHF harmless-base (test split, 2,312 pairs) and Auto-J pairwise (1,392 pairs, 373 ties)
are split 80/20 by prompt (3 seeds); a linear head on frozen all-MiniLM-L6-v2 features is
trained with each loss and scored on the held-out pairs (RewardBench accuracy; tie-labelled
pairs excluded from scoring, used as soft 0.5 targets in training). The length-only baseline
(longer response wins) is scored on the same held-out pairs.

    python experiments/reward/text_rm.py              # results/text.csv, .run.json, .md
    python experiments/reward/text_rm.py --table-only # the .md again from the CSV

Each fit's row goes to results/text.csv as it finishes (atomically); `--resume` keeps the
rows there and runs only the missing fits. The first run embeds ≈ 10,700 texts (about
7–9 CPU-minutes on one thread), in chunks that each go to the embedding cache at once.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from common import (
    RawRows,
    md_table,
    mean_std,
    measure_and_tabulate,
    minilm_features,
    prefs_file,
    run,
    run_header,
)

from robustrl.reward.data import evaluate_pairs, length_baseline, load_preferences, split_by_prompt
from robustrl.reward.losses import MeanVarLoss, make_loss
from robustrl.reward.models import RewardNet, RewardNetConfig
from robustrl.reward.train import Pairs, TrainConfig, fit_preferences, item_rewards

DATASETS = {
    "HH-RLHF harmless": ("hh_rlhf_harmless_base_test.jsonl.gz", "hh-rlhf"),
    "Auto-J pairwise": ("autoj_pairwise_test.jsonl.gz", "autoj"),
}
METHODS = [  # label, loss name, loss params, feature slice
    ("BT", "bt", {}, "pair"),
    ("BT, response-only features", "bt", {}, "response"),
    ("margin BT (m = 1)", "margin-bt", {}, "pair"),
    ("scaled BT (m = 1)", "scaled-bt", {}, "pair"),
    ("R3M λ=0.5", "r3m", {"lam": 0.5}, "pair"),
    ("adaptive (τ₀ 0.1, τ_max 4, ρ₀ 0.1)", "adaptive", {}, "pair"),
    ("Mean-Var", "meanvar", {}, "pair"),
]
SEEDS = (0, 1, 2)


FIELDS = ["data", "method", "seed", "accuracy", "train_accuracy", "n_test", "seconds",
          "cpu_seconds"]
COMMAND = "python experiments/reward/text_rm.py"
BASELINE = "length baseline"


def measure(resume: bool) -> None:
    """One CSV row per data set × seed × method (and the length baseline), each written as
    its fit finishes."""
    files = {name: prefs_file(file) for name, (file, _) in DATASETS.items()}  # all, up front
    log = RawRows("text", FIELDS, resume)
    started = time.time()
    for name, (_, fmt) in DATASETS.items():
        data = load_preferences(files[name], fmt)
        feats = minilm_features(data)
        half = feats.shape[1] // 2
        for seed in SEEDS:
            train, test = split_by_prompt(data, 0.2, seed)
            n_test = len(test) - int((test.label == 0.5).sum())  # ties are not scored
            if not log.done(data=name, method=BASELINE, seed=seed):
                log.add({"data": name, "method": BASELINE, "seed": seed, "n_test": n_test,
                         "accuracy": length_baseline(test)["accuracy"]})
            for label, loss_name, params, view in METHODS:
                if log.done(data=name, method=label, seed=seed):
                    continue
                x = feats if view == "pair" else feats[:, :half]
                loss = make_loss(loss_name, **params)
                head = "meanvar" if isinstance(loss, MeanVarLoss) else "scalar"
                torch.manual_seed(seed)
                net = RewardNet(RewardNetConfig(x.shape[1], head=head))
                res = fit_preferences(
                    net, x, Pairs.from_data(train), loss, TrainConfig(epochs=30, seed=seed)
                )
                r = item_rewards(net, x).numpy()
                log.add({
                    "data": name, "method": label, "seed": seed, "n_test": n_test,
                    "accuracy": evaluate_pairs(r[test.chosen], r[test.rejected], test)[
                        "accuracy"],
                    "train_accuracy": evaluate_pairs(r[train.chosen], r[train.rejected],
                                                     train)["accuracy"],
                    "seconds": res.seconds, "cpu_seconds": res.cpu_seconds,
                })
            print(name, seed, f"{time.time() - started:.0f}s", flush=True)


def table(rows: list[dict[str, str]], info: dict) -> str:
    """The Markdown table, a pure function of the CSV rows (and the run's header info)."""

    def values(data: str, method: str, field: str) -> list[float]:
        sel = sorted((r for r in rows if r["data"] == data and r["method"] == method),
                     key=lambda r: int(r["seed"]))
        return [float(r[field]) for r in sel]

    out, ratios = [], []
    for name in DATASETS:
        for method in [BASELINE, *(m[0] for m in METHODS)]:
            trained = method != BASELINE
            out.append([
                name, method, mean_std(values(name, method, "accuracy")),
                mean_std(values(name, method, "train_accuracy")) if trained else "–",
                f"{np.mean(values(name, method, 'seconds')):.2f}" if trained else "–",
                f"{np.mean(values(name, method, 'n_test')):.0f}",
                len(values(name, method, "accuracy")),
            ])
        ratios.append(tuple(
            np.sum(values(name, "R3M λ=0.5", f)) / np.sum(values(name, "BT", f))
            for f in ("cpu_seconds", "seconds")))
    seeds = sorted({int(r["seed"]) for r in rows})
    text = run_header("Text reward models on real preferences (frozen MiniLM)", info, "text")
    text += (
        "\nFrozen all-MiniLM-L6-v2 (mean pooling, 256 tokens, normalised); features "
        "[e_response, e_prompt ⊙ e_response] (768-d) unless noted; linear head; AdamW lr 1e-3, "
        "batch 64, 30 epochs; 80/20 split by prompt; mean ± sample standard deviation (n − 1) "
        f"over seeds {', '.join(map(str, seeds))}. Accuracy = fraction of held-out pairs with "
        "r(chosen) > r(rejected) (equal rewards count as wrong; Auto-J tie pairs are excluded "
        "from scoring and trained on as soft 0.5 targets). Neither data set carries a "
        "preference strength, so margin BT uses m = 1 (a fixed margin) and scaled BT equals "
        "BT exactly.\n\n"
        + md_table(["data", "method", "held-out accuracy", "train accuracy", "train s",
                    "held-out n (mean)", "seeds"], out)
        + "\n\ntrain s = mean optimisation-loop wall seconds per fit (1 thread, shared "
        "machine). held-out n = scored held-out pairs (ties excluded), mean over seeds. "
        "R3M/BT optimisation time in this run (CPU, wall; summed over seeds): "
        + ", ".join(f"{n} {c:.3f}, {w:.3f}" for n, (c, w) in zip(DATASETS, ratios, strict=True))
    )
    return text


def main() -> None:
    measure_and_tabulate("text", COMMAND, lambda args: measure(args.resume), table)


if __name__ == "__main__":
    run(main)
