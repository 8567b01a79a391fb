"""Benchmark (b): preference losses on real text with a frozen MiniLM head.

HH-RLHF harmless-base (test split, 2,312 pairs) and Auto-J pairwise (1,392 pairs, 373 ties)
are split 80/20 by prompt (3 seeds); a linear head on frozen all-MiniLM-L6-v2 features is
trained with each loss and scored on the held-out pairs (RewardBench accuracy; tie-labelled
pairs excluded from scoring, used as soft 0.5 targets in training). The length-only baseline
(longer response wins) is scored on the same held-out pairs.

    python experiments/reward/text_rm.py              # writes results/text.md
"""

from __future__ import annotations

import time

import numpy as np
import torch
from common import header, md_table, mean_std, minilm_features, prefs_file, run, write

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


def main() -> None:
    torch.set_num_threads(1)
    started = time.time()
    rows, ratios = [], []
    files = {name: prefs_file(file) for name, (file, _) in DATASETS.items()}  # all, up front
    for name, (_, fmt) in DATASETS.items():
        data = load_preferences(files[name], fmt)
        feats = minilm_features(data)
        half = feats.shape[1] // 2
        acc: dict[str, list[float]] = {}
        train_acc: dict[str, list[float]] = {}
        seconds: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}
        for seed in SEEDS:
            train, test = split_by_prompt(data, 0.2, seed)
            acc.setdefault("length baseline", []).append(length_baseline(test)["accuracy"])
            for label, loss_name, params, view in METHODS:
                x = feats if view == "pair" else feats[:, :half]
                loss = make_loss(loss_name, **params)
                head = "meanvar" if isinstance(loss, MeanVarLoss) else "scalar"
                torch.manual_seed(seed)
                net = RewardNet(RewardNetConfig(x.shape[1], head=head))
                res = fit_preferences(
                    net, x, Pairs.from_data(train), loss, TrainConfig(epochs=30, seed=seed)
                )
                seconds.setdefault(label, []).append(res.seconds)
                cpu.setdefault(label, []).append(res.cpu_seconds)
                r = item_rewards(net, x).numpy()
                acc.setdefault(label, []).append(
                    evaluate_pairs(r[test.chosen], r[test.rejected], test)["accuracy"]
                )
                train_acc.setdefault(label, []).append(
                    evaluate_pairs(r[train.chosen], r[train.rejected], train)["accuracy"]
                )
            print(name, seed, f"{time.time() - started:.0f}s", flush=True)
        n_test = len(test) - int((test.label == 0.5).sum())
        for label, values in acc.items():
            tr = mean_std(train_acc[label]) if label in train_acc else "–"
            t = f"{np.mean(seconds[label]):.2f}" if label in seconds else "–"
            rows.append([name, label, mean_std(values), tr, t, f"~{n_test}"])
        ratios.append(
            (
                np.sum(cpu["R3M λ=0.5"]) / np.sum(cpu["BT"]),
                np.sum(seconds["R3M λ=0.5"]) / np.sum(seconds["BT"]),
            )
        )

    text = header(
        "Text reward models on real preferences (frozen MiniLM)",
        "python experiments/reward/text_rm.py",
        started,
    )
    text += (
        "\nFrozen all-MiniLM-L6-v2 (mean pooling, 256 tokens, normalised); features "
        "[e_response, e_prompt ⊙ e_response] (768-d) unless noted; linear head; AdamW lr 1e-3, "
        "batch 64, 30 epochs; 80/20 split by prompt, mean ± std over seeds "
        f"{', '.join(map(str, SEEDS))}. Accuracy = fraction of held-out pairs with "
        "r(chosen) > r(rejected) (equal rewards count as wrong; Auto-J tie pairs are excluded "
        "from scoring and trained on as soft 0.5 targets). Neither data set carries a "
        "preference strength, so margin BT uses m = 1 (a fixed margin) and scaled BT equals "
        "BT exactly.\n\n"
        + md_table(
            ["data", "method", "held-out accuracy", "train accuracy", "train s", "held-out n"], rows
        )
        + "\n\ntrain s = mean optimisation-loop seconds per fit (1 thread, shared machine). "
        + "R3M/BT optimisation time in this run (CPU, wall): "
        + ", ".join(f"{n} {c:.3f}, {w:.3f}" for n, (c, w) in zip(DATASETS, ratios, strict=True))
    )
    write("text.md", text)


if __name__ == "__main__":
    run(main)
