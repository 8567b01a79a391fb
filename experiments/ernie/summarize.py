"""The ERNIE summary tables (experiments/ernie/results/summary.md), written only from the
bench reports' CSVs in experiments/ernie/results/ernie_<suite>/ (themselves regenerated from
each suite's committed episodes.csv + runs.csv), so `experiments/check_results.py` can
rebuild the file and compare it line for line:

    python experiments/ernie/summarize.py            # rewrites results/summary.md

Per suite: each method's clean return, its normalized score pooled over every perturbed
condition, the probability that it beats the unregularized baseline, and the empirical
Lipschitz constant; then P(method > baseline) per perturbation kind.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SUITES = (  # (report folder, baseline label, heading)
    ("ernie_mujoco", "ppo", "PPO on `mujoco/Hopper-v5`, mass and friction ×0.5–2 "
                            "(100k steps, 5 seeds, 5 evaluation episodes per cell)"),
    ("ernie_mpe_adversarial", "mappo",
     "MAPPO self-play on `mpe/simple_adversary`, good team scored (100k steps, 5 seeds, "
     "20 evaluation episodes per cell)"),
    ("ernie_traffic", "idqn",
     "IDQN (QCOMBO) on `traffic/arterial4x4` (RESCO, saturated), 1,800 s episodes (10k steps, "
     "5 seeds, 2 evaluation episodes per cell); fixed-time and max-pressure controllers "
     "scored on the same cells"),
)
REFERENCES = ("fixed-time", "max-pressure")
"""Reference controllers listed after the learners (deterministic: every seed repeats)."""


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _ci(iqm: str, lo: str, hi: str, digits: int) -> str:
    return f"{float(iqm):.{digits}f} [{float(lo):.{digits}f}, {float(hi):.{digits}f}]"


def suite_tables(folder: str, baseline: str, heading: str) -> list[str]:
    path = RESULTS / folder
    summary = _rows(path / "summary.csv")
    aggregates = {(r["agent"], r["perturbation"]): r for r in _rows(path / "aggregates.csv")}
    improvements: dict[tuple[str, str], dict[str, str]] = {}
    for r in _rows(path / "improvements.csv"):  # pooled over strengths; a kind with one
        if r["a"] == baseline:  # strength has only its per-strength row. P(B > A) = 1 - P(A > B)
            r = {**r, "a": r["b"], "b": baseline, "p": 1 - float(r["p"]),  # (ties count 1/2)
                 "lo": 1 - float(r["hi"]), "hi": 1 - float(r["lo"])}
        key = (r["a"], r["perturbation"])
        if r["b"] == baseline and (r["strength"] == "all" or key not in improvements):
            improvements[key] = r
    methods = sorted({r["agent"] for r in summary if r["agent"] != "random"},
                     key=lambda a: (a in REFERENCES, a != baseline, a))
    kinds = sorted({r["perturbation"] for r in summary if r["perturbation"] != "none"})
    first = {a: next(r for r in summary if r["agent"] == a) for a in methods}
    digits = 1 if max(abs(float(r["clean"])) for r in first.values()) < 100 else 0
    out = [f"### {heading}", "",
           f"Report: `{folder}/report.md`. Runs per method: {first[baseline]['seeds']}.", "",
           "| method | clean return IQM [95% CI] | normalized score, all perturbed conditions, "
           "IQM [95% CI] | P(method > baseline), all conditions [95% CI] | Lipschitz (mean "
           "over runs) |",
           "|---|---|---|---|---|"]
    for a in methods:
        s, agg = first[a], aggregates.get((a, "all"))  # none without random-policy rows
        p = improvements.get((a, "all"))
        lip = f"{float(s['lipschitz']):.2f}" if s["lipschitz"] else "–"
        out.append(f"| {a} | {_ci(s['clean'], s['clean_lo'], s['clean_hi'], digits)} | "
                   f"{'–' if agg is None else _ci(agg['iqm'], agg['lo'], agg['hi'], 2)} | "
                   f"{'baseline' if p is None else _ci(p['p'], p['lo'], p['hi'], 2)} | {lip} |")
    out += ["", "P(method > baseline) per perturbation kind (all its strengths) [95% CI]:", "",
            "| perturbation | " + " | ".join(a for a in methods if a != baseline) + " |",
            "|---|" + "---|" * (len(methods) - 1)]
    for kind in kinds:
        cells = []
        for a in methods[1:]:
            p = improvements.get((a, kind))
            cells.append("–" if p is None else _ci(p["p"], p["lo"], p["hi"], 2))
        out.append(f"| {kind} | " + " | ".join(cells) + " |")
    if any(k[1] != "all" for k in aggregates):  # normalized scores need the random policy
        out += ["", "Normalized score per perturbation kind (all its strengths), IQM [95% CI]; "
                "white-box PGD against the transferred attack is the gradient-masking check "
                "(a masked policy would look robust to the first only):", "",
                "| perturbation | " + " | ".join(methods) + " |",
                "|---|" + "---|" * len(methods)]
        for kind in kinds:
            cells = [("–" if (agg := aggregates.get((a, kind))) is None
                      else _ci(agg["iqm"], agg["lo"], agg["hi"], 2)) for a in methods]
            out.append(f"| {kind} | " + " | ".join(cells) + " |")
    return out + [""]


def render() -> str:
    lines = ["# ERNIE under evaluation protocol v2: summary tables", "",
             "Generated by `python experiments/ernie/summarize.py` from the bench reports beside "
             "this file; do not edit by hand. IQM = interquartile mean over runs (training "
             "seeds); [lo, hi] = 95% stratified-bootstrap CI (Agarwal et al. 2021). Normalized "
             "score = (score − random policy's score) / (clean score − random policy's score), "
             "the random policy evaluated under the same perturbation: 1 = as good as clean, "
             "0 = no better than random. P(method > baseline) = probability that a run of the "
             "method scores a higher return than a run of the baseline on the same condition "
             "(ties ½), averaged over conditions; lower end > 0.5 = the method helps. "
             "Lipschitz = max over clean-episode states of ‖π(s+δ) − π(s)‖₂ / ‖δ‖∞, δ found by "
             "10-step PGD in the ε = 0.1 ball (normalized units): a lower bound on the local "
             "constant, mean over runs.", ""]
    for folder, baseline, heading in SUITES:
        lines += suite_tables(folder, baseline, heading)
    return "\n".join(lines)


def main() -> int:
    (RESULTS / "summary.md").write_text(render())
    print(f"wrote {RESULTS / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
