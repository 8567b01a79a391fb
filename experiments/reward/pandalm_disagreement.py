"""Benchmark (c): can a reward model tell which PandaLM pairs its annotators disagree on?

PandaLM's test set has three annotators per pair; 116 of the 993 well-formed pairs (6 rows
have non-string responses and are skipped) are not unanimous. Mean-Var is trained on the
annotators' vote distribution and scores disagreement by −(|μ_A − μ_B| − λ(σ_A + σ_B)); a BT
model trained on the majority label scores it by −|Δr|. Scores are out-of-fold (5 folds
grouped by prompt, so every pair is scored by a model that never saw its prompt); AUROC over
all pairs, 3 seeds of the fold assignment.

    python experiments/reward/pandalm_disagreement.py  # writes results/pandalm.md
"""

from __future__ import annotations

import time

import numpy as np
import torch
from common import auroc, header, md_table, mean_std, minilm_features, prefs_file, run, write

from robustrl.reward.data import evaluate_pairs, load_preferences
from robustrl.reward.losses import diverging_score, make_loss
from robustrl.reward.models import RewardNet, RewardNetConfig
from robustrl.reward.train import Pairs, TrainConfig, fit_preferences

FOLDS, SEEDS, LAM = 5, (0, 1, 2), 1.0


def main() -> None:
    torch.set_num_threads(1)
    started = time.time()
    data = load_preferences(prefs_file("pandalm_testset_v1.json.gz"), "pandalm", skip_bad=True)
    feats = minilm_features(data)
    disagree = data.votes.max(1) < 3
    prompt = np.array([data.prompts[i] for i in data.chosen], dtype=object)
    uniq, group = np.unique(prompt, return_inverse=True)
    lengths = np.array([len(r) for r in data.responses], dtype=float)
    scores: dict[str, list[float]] = {}
    accs: dict[str, list[float]] = {}
    for seed in SEEDS:
        fold = np.random.default_rng(seed).integers(0, FOLDS, len(uniq))[group]
        out = {k: np.zeros(len(data)) for k in ("mv", "mv_mu", "mv_sigma", "bt", "bt_delta")}
        mu_delta = np.zeros(len(data))
        for k in range(FOLDS):
            tr, te = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
            pairs = Pairs.from_data(data.select(tr))
            torch.manual_seed(seed)
            mv = RewardNet(RewardNetConfig(feats.shape[1], head="meanvar"))
            fit_preferences(mv, feats, pairs, make_loss("meanvar"), TrainConfig(seed=seed))
            bt = RewardNet(RewardNetConfig(feats.shape[1]))
            fit_preferences(bt, feats, pairs, make_loss("bt"), TrainConfig(seed=seed))
            with torch.no_grad():
                m, b = mv(feats), bt(feats).reward
            c, r = data.chosen[te], data.rejected[te]
            out["mv"][te] = -diverging_score(m.reward[c], m.var[c], m.reward[r], m.var[r], LAM)
            out["mv_mu"][te] = -(m.reward[c] - m.reward[r]).abs()
            out["mv_sigma"][te] = m.var[c].sqrt() + m.var[r].sqrt()
            out["bt"][te] = -(b[c] - b[r]).abs()
            out["bt_delta"][te] = b[c] - b[r]
            mu_delta[te] = m.reward[c] - m.reward[r]
        out["len"] = -np.abs(lengths[data.chosen] - lengths[data.rejected])
        for key, s in out.items():
            if key != "bt_delta":
                scores.setdefault(key, []).append(auroc(s, disagree))
        zero = np.zeros(len(data))
        accs.setdefault("BT", []).append(evaluate_pairs(out["bt_delta"], zero, data)["accuracy"])
        accs.setdefault("Mean-Var", []).append(evaluate_pairs(mu_delta, zero, data)["accuracy"])
        print(seed, f"{time.time() - started:.0f}s", flush=True)

    names = {
        "mv": f"Mean-Var −diverging score (λ = {LAM:g})",
        "mv_mu": "Mean-Var −|μ_A − μ_B| alone",
        "mv_sigma": "Mean-Var σ_A + σ_B alone",
        "bt": "BT −|Δr|",
        "len": "−|length difference| (no model)",
    }
    rows = [[names[k], mean_std(v)] for k, v in scores.items()]
    acc_rows = [[k, mean_std(v)] for k, v in accs.items()]
    text = header(
        "Diverging preferences on PandaLM: AUROC for annotator disagreement",
        "python experiments/reward/pandalm_disagreement.py",
        started,
    )
    text += (
        f"\n{len(data)} pairs ({data.skipped} malformed rows skipped: non-string responses), "
        f"{int(disagree.sum())} with annotator disagreement (not 3–0). Frozen MiniLM pair "
        "features, linear heads, AdamW lr 1e-3, 30 epochs, batch 64. Out-of-fold scores from "
        f"{FOLDS}-fold cross-fitting grouped by prompt; mean ± std over seeds "
        f"{', '.join(map(str, SEEDS))} of the fold assignment. AUROC 0.5 = chance.\n\n"
        + md_table(["disagreement score", "AUROC"], rows)
        + "\n\nOut-of-fold majority-label accuracy (tie majorities excluded):\n\n"
        + md_table(["model", "accuracy"], acc_rows)
    )
    write("pandalm.md", text)


if __name__ == "__main__":
    run(main)
