"""Preference and rating datasets for text reward models, and RewardBench-style evaluation.

Every loader returns pairs over deduplicated (prompt, response) items, oriented so that
``chosen`` is the preferred item (label 1) or, for ties, label 0.5. A malformed row is reported
as ``FILE:LINE: what is wrong`` and either raises or, with ``skip_bad=True``, is skipped and
counted — never dropped silently. Formats:

- ``jsonl``: generic JSON lines ``prompt, chosen, rejected`` + optional ``strength`` (1–3),
  ``label`` (1, 0.5 tie, 0 = rejected is better), ``subset``.
- ``hh-rlhf``: Anthropic HH-RLHF ``chosen, rejected`` transcripts; the prompt is the dialogue
  up to the last ``Assistant:`` turn.
- ``autoj``: Auto-J pairwise ``prompt, response 1, response 2, label`` (0/1 = which is better,
  2 = tie), subsets by ``scenario``.
- ``pandalm``: PandaLM ``instruction, input, response1, response2, annotator1..3`` (0 tie,
  1/2 = which is better); majority label plus the three votes.
- ``helpsteer2-pref``: HelpSteer2-Preference ``prompt, response_1, response_2,
  preference_strength`` (−3..3, negative = response 1 better).
- ``helpsteer2`` (ratings, :func:`load_ratings`): ``prompt, response`` + five 0–4 attributes.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from robustrl.core.errors import RobustRLError

__all__ = [
    "HELPSTEER2_ATTRIBUTES",
    "PreferenceData",
    "RatingData",
    "detect_format",
    "evaluate_pairs",
    "format_names",
    "length_baseline",
    "load_preferences",
    "load_ratings",
    "split_by_prompt",
]

log = logging.getLogger(__name__)

HELPSTEER2_ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")


@dataclass
class PreferenceData:
    """Preference pairs over (prompt, response) items; arrays are indexed by pair."""

    prompts: list[str]
    """Prompt of each item (items are deduplicated, pairs index into them)."""
    responses: list[str]
    """Response of each item."""
    chosen: np.ndarray
    """(n,) item index of the preferred response (either one for a tie)."""
    rejected: np.ndarray
    """(n,) item index of the other response."""
    label: np.ndarray
    """(n,) 1.0 = chosen better, 0.5 = tie."""
    strength: np.ndarray | None
    """(n,) preference strength m in [1, 3], or None where the source has none."""
    votes: np.ndarray | None
    """(n, 3) annotator counts [rejected better, tie, chosen better] (PandaLM), else None."""
    subset: np.ndarray
    """(n,) subset name of each pair (RewardBench-style per-subset accuracy)."""
    line: np.ndarray
    """(n,) line in the source file, to point back at a row (e.g. an R3M outlier)."""
    source: str = ""
    """File the pairs came from."""
    skipped: int = 0
    """Malformed rows skipped while loading (``skip_bad=True``)."""
    problems: list[str] = field(default_factory=list)
    """The first few skipped-row messages."""

    def __len__(self) -> int:
        return len(self.chosen)

    def select(self, idx: np.ndarray) -> PreferenceData:
        """The pairs at ``idx``, sharing this dataset's items (embeddings are computed once)."""
        pick = {k: getattr(self, k) for k in ("chosen", "rejected", "label", "subset", "line")}
        out = {k: v[idx] for k, v in pick.items()}
        out["strength"] = None if self.strength is None else self.strength[idx]
        out["votes"] = None if self.votes is None else self.votes[idx]
        return replace(self, **out)


@dataclass
class RatingData:
    """Per-response attribute ratings (HelpSteer2), NaN where an attribute is missing."""

    prompts: list[str]
    """Prompt of each rated response."""
    responses: list[str]
    """The rated responses."""
    targets: np.ndarray
    """(n, K) ratings on 0–4, NaN = missing (masked in the regression loss)."""
    attributes: tuple[str, ...]
    """Names of the K columns."""
    line: np.ndarray
    """(n,) line in the source file."""
    source: str = ""
    """File the ratings came from."""
    skipped: int = 0
    """Malformed rows skipped while loading."""
    problems: list[str] = field(default_factory=list)
    """The first few skipped-row messages."""

    def __len__(self) -> int:
        return len(self.responses)


# ----------------------------------------------------------------------------------------
# Reading rows with line numbers


class _Bad(Exception):
    """A malformed row; the message says what is wrong with it."""


def _open_text(path: Path) -> str:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as f:
                return f.read()
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RobustRLError(f"data file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RobustRLError(f"cannot read data file {path}: {e}") from None


def _rows(path: Path) -> Iterator[tuple[int, Any]]:
    """(line, parsed object or _Bad) for JSON lines, or for the elements of one JSON array."""
    text = _open_text(path)
    start = len(text) - len(text.lstrip())
    if text[start : start + 1] != "[":
        # split on "\n" only: str.splitlines would also break at U+2028 inside JSON strings
        for i, raw in enumerate(text.split("\n"), 1):
            if raw.strip():
                try:
                    yield i, json.loads(raw)
                except json.JSONDecodeError as e:
                    yield i, _Bad(f"invalid JSON ({e.msg})")
        return
    dec = json.JSONDecoder()
    pos, line = start + 1, 1 + text.count("\n", 0, start + 1)
    while True:
        nxt = _skip_ws(text, pos)
        line += text.count("\n", pos, nxt)
        pos = nxt
        if pos >= len(text) or text[pos] == "]":
            return
        try:
            obj, end = dec.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise RobustRLError(f"{path}:{line}: invalid JSON ({e.msg}); cannot continue") from None
        yield line, obj
        line += text.count("\n", pos, end)
        pos = _skip_ws(text, end)
        if pos < len(text) and text[pos] == ",":
            pos += 1


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _text(row: dict, key: str) -> str:
    if key not in row:
        raise _Bad(f"missing field {key!r}")
    v = row[key]
    if not isinstance(v, str):
        raise _Bad(f"field {key!r} must be a string, got {type(v).__name__}")
    return v


def _num(row: dict, key: str, lo: float, hi: float, integer: bool = False) -> float:
    if key not in row:
        raise _Bad(f"missing field {key!r}")
    v = row[key]
    if isinstance(v, str) and v.strip().lstrip("+-").isdigit():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int | float) or (integer and v != int(v)):
        raise _Bad(f"field {key!r} must be {'an integer' if integer else 'a number'}, got {v!r}")
    if not lo <= v <= hi:
        raise _Bad(f"field {key!r} = {v} is out of range [{lo:g}, {hi:g}]")
    return float(v)


# A parsed pair: prompt, chosen, rejected, label, strength (or None), votes (or None), subset
_Pair = tuple[str, str, str, float, float | None, tuple[int, int, int] | None, str]


def _generic(row: dict) -> _Pair:
    prompt, a, b = _text(row, "prompt"), _text(row, "chosen"), _text(row, "rejected")
    strength = _num(row, "strength", 1, 3) if row.get("strength") is not None else None
    label = 1.0
    if row.get("label") is not None:
        label = _num(row, "label", 0, 1)
        if label not in (0.0, 0.5, 1.0):
            raise _Bad(f"field 'label' must be 1, 0.5 (tie) or 0, got {row['label']!r}")
    if label == 0.0:
        a, b, label = b, a, 1.0
    subset = row.get("subset", "all")
    return prompt, a, b, label, strength, None, subset if isinstance(subset, str) else str(subset)


_ASSISTANT = "\n\nAssistant:"


def _split_turn(transcript: str) -> tuple[str, str]:
    i = transcript.rfind(_ASSISTANT)
    if i < 0:
        return "", transcript
    return transcript[: i + len(_ASSISTANT)], transcript[i + len(_ASSISTANT) :].strip()


def _hh(row: dict) -> _Pair:
    prompt, chosen = _split_turn(_text(row, "chosen"))
    _, rejected = _split_turn(_text(row, "rejected"))
    return prompt, chosen, rejected, 1.0, None, None, "hh-rlhf"


def _autoj(row: dict) -> _Pair:
    prompt, r1, r2 = _text(row, "prompt"), _text(row, "response 1"), _text(row, "response 2")
    label = _num(row, "label", 0, 2, integer=True)
    scenario = row.get("scenario", "autoj")
    chosen, rejected = (r2, r1) if label == 1 else (r1, r2)
    return prompt, chosen, rejected, 0.5 if label == 2 else 1.0, None, None, str(scenario)


def _pandalm(row: dict) -> _Pair:
    instruction = _text(row, "instruction")
    r1, r2 = _text(row, "response1"), _text(row, "response2")
    extra = row.get("input") or ""
    if not isinstance(extra, str):
        raise _Bad("field 'input' must be a string")
    prompt = f"{instruction}\n\n{extra}" if extra else instruction
    counts = [0, 0, 0]  # tie, response1, response2
    for k in ("annotator1", "annotator2", "annotator3"):
        counts[int(_num(row, k, 0, 2, integer=True))] += 1
    tie, one, two = counts
    if two > one and two > tie:
        return prompt, r2, r1, 1.0, None, (one, tie, two), "pandalm"
    label = 1.0 if one > two and one > tie else 0.5
    return prompt, r1, r2, label, None, (two, tie, one), "pandalm"


def _helpsteer2_pref(row: dict) -> _Pair:
    prompt, r1, r2 = _text(row, "prompt"), _text(row, "response_1"), _text(row, "response_2")
    s = _num(row, "preference_strength", -3, 3, integer=True)
    chosen, rejected = (r2, r1) if s > 0 else (r1, r2)
    split = row.get("split", "helpsteer2")
    return prompt, chosen, rejected, 0.5 if s == 0 else 1.0, max(abs(s), 1.0), None, str(split)


_PARSERS: dict[str, Callable[[dict], _Pair]] = {
    "jsonl": _generic,
    "hh-rlhf": _hh,
    "autoj": _autoj,
    "pandalm": _pandalm,
    "helpsteer2-pref": _helpsteer2_pref,
}
_STRENGTH = {"helpsteer2-pref"}  # formats whose strength is always known


def format_names() -> list[str]:
    """Formats :func:`load_preferences` and :func:`load_ratings` read."""
    return [*_PARSERS, "helpsteer2"]


def detect_format(path: str | Path) -> str:
    """Guess the format from the first row's fields (for ``--format auto``)."""
    return _detect(Path(path), _rows(Path(path)))


def _detect(path: Path, rows: Iterable[tuple[int, Any]]) -> str:
    for _, row in rows:
        if not isinstance(row, dict):
            continue
        keys = set(row)
        if "preference_strength" in keys:
            return "helpsteer2-pref"
        if "response 1" in keys:
            return "autoj"
        if "annotator1" in keys:
            return "pandalm"
        if "helpfulness" in keys or {"prompt", "response"} <= keys:
            return "helpsteer2"
        if {"chosen", "rejected"} <= keys:
            return "jsonl" if "prompt" in keys else "hh-rlhf"
        break
    raise RobustRLError(f"cannot tell the format of {path}; pass --format "
                        f"({', '.join(format_names())})")


class _Collector:
    """Parses rows, turning each malformed one into FILE:LINE: reason (raise or count)."""

    def __init__(self, path: Path, skip_bad: bool) -> None:
        self.path, self.skip_bad = path, skip_bad
        self.rows = list(_rows(path))
        self.skipped, self.problems = 0, []

    def format(self, fmt: str) -> str:
        return _detect(self.path, self.rows) if fmt == "auto" else fmt

    def parse(self, parse: Callable[[dict], Any]) -> Iterator[tuple[int, Any]]:
        for line, row in self.rows:
            try:
                if isinstance(row, _Bad):
                    raise row
                if not isinstance(row, dict):
                    raise _Bad(f"expected a JSON object, got {type(row).__name__}")
                yield line, parse(row)
            except _Bad as e:
                msg = f"{self.path}:{line}: {e}"
                if not self.skip_bad:
                    raise RobustRLError(f"{msg} (use --skip-bad to skip such rows)") from None
                self.skipped += 1
                if len(self.problems) < 5:
                    self.problems.append(msg)

    def finish(self, n: int) -> None:
        if self.skipped:
            log.warning("%s: skipped %d malformed rows; first: %s", self.path, self.skipped,
                        self.problems[0])
        if n == 0:
            why = f" ({self.skipped} malformed rows skipped)" if self.skipped else ""
            raise RobustRLError(f"{self.path}: no usable rows{why}; nothing to train or evaluate")


def load_preferences(path: str | Path, fmt: str = "auto", skip_bad: bool = False) -> PreferenceData:
    """Read preference pairs from a (optionally .gz) JSONL file or JSON array."""
    path = Path(path)
    col = _Collector(path, skip_bad)
    fmt = col.format(fmt)
    if fmt not in _PARSERS:
        hint = "; ratings load with load_ratings" if fmt == "helpsteer2" else ""
        raise RobustRLError(f"unknown preference format {fmt!r}; choose one of: "
                            f"{', '.join(_PARSERS)}{hint}")
    items: dict[tuple[str, str], int] = {}
    rows = [(line, *p) for line, p in col.parse(_PARSERS[fmt])]
    col.finish(len(rows))
    lines, prompts, chosen, rejected, label, strength, votes, subset = zip(*rows, strict=True)
    c = [items.setdefault((p, r), len(items)) for p, r in zip(prompts, chosen, strict=True)]
    r = [items.setdefault((p, r), len(items)) for p, r in zip(prompts, rejected, strict=True)]
    known = fmt in _STRENGTH or any(s is not None for s in strength)
    return PreferenceData(
        prompts=[k[0] for k in items],
        responses=[k[1] for k in items],
        chosen=np.array(c),
        rejected=np.array(r),
        label=np.array(label, dtype=np.float32),
        strength=np.array([1.0 if s is None else s for s in strength], np.float32)
        if known else None,
        votes=np.array(votes, dtype=np.float32) if votes[0] is not None else None,
        subset=np.array(subset, dtype=object),
        line=np.array(lines),
        source=str(path),
        skipped=col.skipped,
        problems=col.problems,
    )


def _helpsteer2_rating(row: dict) -> tuple[str, str, list[float]]:
    prompt, response = _text(row, "prompt"), _text(row, "response")
    vals = [_num(row, a, 0, 4) if row.get(a) is not None else np.nan for a in HELPSTEER2_ATTRIBUTES]
    if all(np.isnan(vals)):
        raise _Bad(f"no rating; expected some of {', '.join(HELPSTEER2_ATTRIBUTES)}")
    return prompt, response, vals


def load_ratings(path: str | Path, fmt: str = "helpsteer2", skip_bad: bool = False) -> RatingData:
    """Read HelpSteer2-style attribute ratings (missing attributes become NaN)."""
    path = Path(path)
    col = _Collector(path, skip_bad)
    if col.format(fmt) != "helpsteer2":
        raise RobustRLError(f"ratings come in format 'helpsteer2', got {col.format(fmt)!r}")
    rows = list(col.parse(_helpsteer2_rating))
    col.finish(len(rows))
    return RatingData(
        prompts=[p for _, (p, _, _) in rows],
        responses=[r for _, (_, r, _) in rows],
        targets=np.array([v for _, (_, _, v) in rows], dtype=np.float32),
        attributes=HELPSTEER2_ATTRIBUTES,
        line=np.array([line for line, _ in rows]),
        source=str(path),
        skipped=col.skipped,
        problems=col.problems,
    )


def split_by_prompt(data: PreferenceData, test_frac: float,
                    seed: int = 0) -> tuple[PreferenceData, PreferenceData]:
    """Train/test split that keeps all pairs of a prompt together (no prompt leaks)."""
    if not 0 < test_frac < 1:
        raise RobustRLError(f"test fraction must be in (0, 1), got {test_frac}")
    prompt_of_pair = np.array([data.prompts[i] for i in data.chosen], dtype=object)
    uniq, inv = np.unique(prompt_of_pair, return_inverse=True)
    rng = np.random.default_rng(seed)
    is_test = rng.random(len(uniq)) < test_frac
    test = is_test[inv]
    if test.all() or not test.any():
        raise RobustRLError(f"{data.source}: too few prompts ({len(uniq)}) to split")
    return data.select(np.flatnonzero(~test)), data.select(np.flatnonzero(test))


def evaluate_pairs(reward_chosen: np.ndarray, reward_rejected: np.ndarray,
                   data: PreferenceData) -> dict[str, Any]:
    """RewardBench-style accuracy: fraction with r(chosen) > r(rejected); equal rewards count
    as wrong. Tie-labelled pairs have no right answer for a scalar reward and are left out
    (their count is reported). Returns overall (micro), mean over subsets (macro), per subset.
    """
    rc, rr = np.asarray(reward_chosen), np.asarray(reward_rejected)
    strict = data.label != 0.5
    correct = (rc > rr)[strict]
    subsets = data.subset[strict]
    names, inv = np.unique(subsets, return_inverse=True)
    n_sub = np.bincount(inv, minlength=len(names))
    acc_sub = np.bincount(inv, weights=correct, minlength=len(names)) / np.maximum(n_sub, 1)
    per = {
        str(s): {"n": int(n), "accuracy": float(a)}
        for s, n, a in zip(names, n_sub, acc_sub, strict=True)
    }
    return {
        "n": int(strict.sum()),
        "n_ties_excluded": int((~strict).sum()),
        "accuracy": float(correct.mean()) if correct.size else float("nan"),
        "subset_mean": float(acc_sub.mean()) if len(names) else float("nan"),
        "subsets": per,
    }


def length_baseline(data: PreferenceData) -> dict[str, Any]:
    """The longer response wins (by characters): the style baseline every RM must beat."""
    lengths = np.array([len(r) for r in data.responses], dtype=np.float64)
    return evaluate_pairs(lengths[data.chosen], lengths[data.rejected], data)
