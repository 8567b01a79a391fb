"""Small helpers shared by the reward-learning benchmark scripts (not part of the library)."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from robustrl.core.errors import RobustRLError
from robustrl.reward.data import PreferenceData

RESULTS = Path(__file__).resolve().parent / "results"
# The preference files live next to the project folder (../shared/data/preferences/), or
# wherever $ROBUSTRL_PREFS points; README.md says where each comes from.
SHARED_PREFS = Path(os.environ.get("ROBUSTRL_PREFS") or
                    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "preferences")
SOURCES = {  # file -> (data set, upstream repository : path, license)
    "hh_rlhf_harmless_base_test.jsonl.gz": (
        "HH-RLHF harmless-base test split", "github.com/anthropics/hh-rlhf : "
        "harmless-base/test.jsonl.gz", "MIT"),
    "autoj_pairwise_test.jsonl.gz": (
        "Auto-J pairwise test set", "github.com/prometheus-eval/prometheus-eval : "
        "eval/benchmark/data/autoj_pairwise.json", "Apache-2.0"),
    "pandalm_testset_v1.json.gz": (
        "PandaLM test set v1", "github.com/WeOpenML/PandaLM : data/testset-v1.json",
        "Apache-2.0"),
}


def prefs_file(name: str, folder: Path | str = SHARED_PREFS) -> Path:
    """The path of a preference file; stops with one line naming what is missing and where
    it comes from when it is absent."""
    path = Path(folder) / name
    if not path.is_file():
        what, source, license_ = SOURCES.get(name, (name, "see README.md", "see upstream"))
        sys.exit(f"missing {path} ({what}; from {source}, {license_}): put the file there or "
                 "set ROBUSTRL_PREFS to its folder (experiments/reward/README.md)")
    return path


def run(main: Callable[[], None]) -> None:
    """Run a script's main; a RobustRLError (a missing extra, bad input) is one line."""
    try:
        main()
    except RobustRLError as e:
        sys.exit(f"{Path(sys.argv[0]).name}: error: {e}")


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
