"""Benchmark (c): can a reward model tell which PandaLM pairs its annotators disagree on?

PandaLM's test set has three annotators per pair; 116 of the 993 well-formed pairs (6 rows
have non-string responses and are skipped) are not unanimous. Mean-Var is trained on the
annotators' vote distribution and scores disagreement by −(|μ_A − μ_B| − λ(σ_A + σ_B)); a BT
model trained on the majority label scores it by −|Δr|. Scores are out-of-fold (5 folds
grouped by prompt, so every pair is scored by a model that never saw its prompt); AUROC over
all pairs, 3 seeds of the fold assignment.

    python experiments/reward/pandalm_disagreement.py  # results/pandalm.csv, .run.json, .md
    python experiments/reward/pandalm_disagreement.py --table-only  # the .md from the CSV

Each seed's rows go to results/pandalm.csv when it finishes (atomically); `--resume` keeps
the seeds there and runs only the missing ones.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from common import (
    RawRows,
    auroc,
    md_table,
    mean_std,
    measure_and_tabulate,
    minilm_features,
    prefs_file,
    run,
    run_header,
)

from robustrl.reward.data import evaluate_pairs, load_preferences
from robustrl.reward.losses import diverging_score, make_loss
from robustrl.reward.models import RewardNet, RewardNetConfig
from robustrl.reward.train import Pairs, TrainConfig, fit_preferences

FOLDS, SEEDS, LAM = 5, (0, 1, 2), 1.0


NAMES = {  # score key -> table label
    "mv": f"Mean-Var −diverging score (λ = {LAM:g})",
    "mv_mu": "Mean-Var −|μ_A − μ_B| alone",
    "mv_sigma": "Mean-Var σ_A + σ_B alone",
    "bt": "BT −|Δr|",
    "len": "−|length difference| (no model)",
}
FIELDS = ["seed", "metric", "score", "value", "n_pairs", "n_disagree", "n_skipped"]
COMMAND = "python experiments/reward/pandalm_disagreement.py"


def measure(resume: bool) -> None:
    """Per seed of the fold assignment, one CSV row per score (AUROC) and per model
    (out-of-fold accuracy), written when the seed finishes."""
    data = load_preferences(prefs_file("pandalm_testset_v1.json.gz"), "pandalm", skip_bad=True)
    log = RawRows("pandalm", FIELDS, resume)
    started = time.time()
    feats = minilm_features(data)
    disagree = data.votes.max(1) < 3
    prompt = np.array([data.prompts[i] for i in data.chosen], dtype=object)
    uniq, group = np.unique(prompt, return_inverse=True)
    lengths = np.array([len(r) for r in data.responses], dtype=float)
    counts = {"n_pairs": len(data), "n_disagree": int(disagree.sum()),
              "n_skipped": data.skipped}
    for seed in SEEDS:
        if log.done(seed=seed):
            continue
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
        zero = np.zeros(len(data))
        log.add([{"seed": seed, "metric": "auroc", "score": key,
                  "value": auroc(out[key], disagree), **counts} for key in NAMES]
                + [{"seed": seed, "metric": "accuracy", "score": model,
                    "value": evaluate_pairs(delta, zero, data)["accuracy"], **counts}
                   for model, delta in (("BT", out["bt_delta"]), ("Mean-Var", mu_delta))])
        print(seed, f"{time.time() - started:.0f}s", flush=True)


def table(rows: list[dict[str, str]], info: dict) -> str:
    """The Markdown tables, a pure function of the CSV rows (and the run's header info)."""

    def values(metric: str, score: str) -> list[float]:
        sel = sorted((r for r in rows if r["metric"] == metric and r["score"] == score),
                     key=lambda r: int(r["seed"]))
        return [float(r["value"]) for r in sel]

    seeds = sorted({int(r["seed"]) for r in rows})
    first = rows[0]
    auroc_rows = [[label, mean_std(values("auroc", key))] for key, label in NAMES.items()]
    acc_rows = [[m, mean_std(values("accuracy", m))] for m in ("BT", "Mean-Var")]
    text = run_header("Diverging preferences on PandaLM: AUROC for annotator disagreement",
                      info, "pandalm")
    text += (
        f"\n{first['n_pairs']} pairs ({first['n_skipped']} malformed rows skipped: non-string "
        f"responses), {first['n_disagree']} with annotator disagreement (not 3–0). Frozen "
        "MiniLM pair features, linear heads, AdamW lr 1e-3, 30 epochs, batch 64. Out-of-fold "
        f"scores from {FOLDS}-fold cross-fitting grouped by prompt; mean ± sample standard "
        f"deviation (n − 1) over seeds {', '.join(map(str, seeds))} of the fold assignment "
        "(AUROC and accuracy are fractions). AUROC 0.5 = chance.\n\n"
        + md_table(["disagreement score", "AUROC"], auroc_rows)
        + "\n\nOut-of-fold majority-label accuracy (tie majorities excluded):\n\n"
        + md_table(["model", "accuracy"], acc_rows)
    )
    return text


def main() -> None:
    measure_and_tabulate("pandalm", COMMAND, lambda args: measure(args.resume), table)


if __name__ == "__main__":
    run(main)
