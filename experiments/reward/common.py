"""Small helpers shared by the reward-learning benchmark scripts (not part of the library)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from robustrl.core.errors import RobustRLError
from robustrl.core.io import atomic_write_text
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


class RawRows:
    """The raw rows of one experiment, `results/<name>.csv`: one row per seed × setting ×
    method, the whole file rewritten atomically (temp file + rename) after every row, so an
    interrupted run keeps every finished row. With `resume` the rows already in the file are
    kept and `done(...)` tells the script which to skip."""

    def __init__(self, name: str, fields: Sequence[str], resume: bool = False) -> None:
        self.path, self.fields = RESULTS / f"{name}.csv", list(fields)
        self.rows: list[dict[str, str]] = read_rows(name) if resume and self.path.exists() \
            else []
        self._flush()

    def done(self, **key: object) -> bool:
        return any(all(r[k] == str(v) for k, v in key.items()) for r in self.rows)

    def add(self, rows: dict | Iterable[dict]) -> None:
        for row in [rows] if isinstance(rows, dict) else rows:
            self.rows.append({k: "" if row.get(k) is None else str(row[k]) for k in self.fields})
        self._flush()

    def _flush(self) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, self.fields, lineterminator="\n")
        w.writeheader()
        w.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue())


def read_rows(name: str) -> list[dict[str, str]]:
    """The rows of `results/<name>.csv` (values as written: floats in full precision)."""
    with open(RESULTS / f"{name}.csv", newline="") as f:
        return list(csv.DictReader(f))


def run_info(name: str, command: str, started: float, cpu_started: float,
             load_start: float) -> dict:
    """How the run went (command, date, wall and CPU time, threads, load), saved beside the
    CSV as `results/<name>.run.json` so `--table-only` can rebuild the header too."""
    info = {
        "command": command,
        "date": time.strftime("%Y-%m-%d"),
        "wall_s": round(time.time() - started, 1),
        "cpu_s": round(time.process_time() - cpu_started, 1),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_start": round(load_start, 2),
        "load_end": round(os.getloadavg()[0], 2),
    }
    atomic_write_text(RESULTS / f"{name}.run.json", json.dumps(info, indent=1) + "\n")
    return info


def load_run_info(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.run.json").read_text())


def measure_and_tabulate(name: str, command: str,
                         measure: Callable[[argparse.Namespace], None],
                         table: Callable[[list[dict[str, str]], dict], str],
                         add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
                         ) -> None:
    """A results script's command line: run `measure` (rows into results/<name>.csv) on one
    torch thread and record how the run went, unless --table-only; then rebuild
    results/<name>.md from the CSV alone."""
    ap = argparse.ArgumentParser()
    if add_arguments:
        add_arguments(ap)
    ap.add_argument("--resume", action="store_true",
                    help=f"keep the rows already in results/{name}.csv and skip them")
    ap.add_argument("--table-only", action="store_true",
                    help=f"only rebuild results/{name}.md from results/{name}.csv")
    args = ap.parse_args()
    if not args.table_only:
        torch.set_num_threads(1)
        started, cpu, load = time.time(), time.process_time(), os.getloadavg()[0]
        measure(args)
        run_info(name, command, started, cpu, load)
    write(f"{name}.md", table(read_rows(name), load_run_info(name)))


def header(title: str, command: str, started: float) -> str:
    return (
        f"# {title}\n\n"
        f"Command: `{command}`  \n"
        f"Run: {time.strftime('%Y-%m-%d')}, {time.time() - started:.0f} s wall, "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"Python {platform.python_version()} on {platform.machine()}\n"
    )


def run_header(title: str, info: dict, name: str) -> str:
    """The header of a table built from `results/<name>.csv` and its `.run.json`."""
    return (
        f"# {title}\n\n"
        f"Command: `{info['command']}`  \n"
        f"Run: {info['date']}, {info['wall_s']:.0f} s wall ({info['cpu_s']:.0f} s CPU of this "
        f"process), torch {info['torch']}, {info['threads']} thread(s), Python "
        f"{info['python']} on {info['machine']}; 1-minute load average "
        f"{info['load_start']:.1f} at the start, {info['load_end']:.1f} at the end (other "
        "jobs share the machine)  \n"
        f"Raw rows: `{name}.csv` (one row per seed × setting × method); every number below "
        f"is recomputed from it by `experiments/check_results.py`; "
        f"`python experiments/reward/{name_script(name)} --table-only` rebuilds this file "
        "from it.\n"
    )


def name_script(name: str) -> str:
    return {"text": "text_rm.py", "pandalm": "pandalm_disagreement.py"}.get(name, f"{name}.py")


def write(name: str, text: str) -> Path:
    path = RESULTS / name
    atomic_write_text(path, text.rstrip() + "\n")
    print(text)
    print(f"\nwrote {path.relative_to(RESULTS.parents[2])}", file=sys.stderr)
    return path


def minilm_features(data: PreferenceData, chunk: int = 16 * 32) -> torch.Tensor:
    """Frozen all-MiniLM-L6-v2 'pair' features [e_response, e_prompt ⊙ e_response] of every
    item, through the on-disk embedding cache (the first run embeds; later runs only read)."""
    from robustrl.reward.text import TextConfig, TextRewardModel, default_cache_dir

    model = TextRewardModel(TextConfig(features="pair"))
    cache = default_cache_dir()
    # Longest first, in chunks of whole batches: the same batches as one call would embed
    # (`embed` sorts the same way), but each chunk goes to the cache as soon as it is done,
    # so an interrupted first run keeps what it embedded.
    texts = sorted(dict.fromkeys([*data.responses, *data.prompts]), key=lambda t: -len(t))
    for i in range(0, len(texts), chunk):
        model.embed(texts[i : i + chunk], cache)
    return model.featurize(data.prompts, data.responses, cache)
