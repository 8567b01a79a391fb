"""Small helpers shared by the reward-learning benchmark scripts (not part of the library)."""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from robustrl.reward.data import PreferenceData

RESULTS = Path(__file__).resolve().parent / "results"
SHARED_PREFS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "preferences"


def mean_std(values: Sequence[float], digits: int = 3) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1) if len(v) > 1 else 0:.{digits}f}"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def auroc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann–Whitney) formula, ties averaged."""
    score, positive = np.asarray(score, float), np.asarray(positive, bool)
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score))
    sorted_scores = score[order]
    # average ranks over tied scores
    uniq, start, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = start + (counts + 1) / 2
    ranks[order] = np.repeat(avg, counts)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def header(title: str, command: str, started: float) -> str:
    return (
        f"# {title}\n\n"
        f"Command: `{command}`  \n"
        f"Run: {time.strftime('%Y-%m-%d')}, {time.time() - started:.0f} s wall, "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"Python {platform.python_version()} on {platform.machine()}\n"
    )


def write(name: str, text: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(text.rstrip() + "\n")
    print(text)
    print(f"\nwrote {path.relative_to(RESULTS.parents[2])}", file=sys.stderr)
    return path


def minilm_features(data: PreferenceData) -> torch.Tensor:
    """Frozen all-MiniLM-L6-v2 'pair' features [e_response, e_prompt ⊙ e_response] of every
    item, through the on-disk embedding cache (the first run embeds; later runs only read)."""
    from robustrl.reward.text import TextConfig, TextRewardModel, default_cache_dir

    model = TextRewardModel(TextConfig(features="pair"))
    return model.featurize(data.prompts, data.responses, default_cache_dir())
