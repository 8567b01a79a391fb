"""`robustrl reward train | eval`: text reward models from the command line.

The top-level CLI calls :func:`add_arguments` on its ``reward`` subparser and :func:`run` on
the parsed arguments. Bad input raises :class:`~robustrl.core.errors.RobustRLError`, which the
top-level CLI prints as one line.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustrl.core.errors import RobustRLError
from robustrl.core.io import atomic_write_text
from robustrl.reward.data import (
    HELPSTEER2_ATTRIBUTES,
    PreferenceData,
    evaluate_pairs,
    format_names,
    length_baseline,
    load_preferences,
    load_ratings,
    split_by_prompt,
)
from robustrl.reward.losses import MeanVarLoss, RegressionLoss, loss_names, make_loss
from robustrl.reward.models import RewardNetConfig, scalar_from_attributes
from robustrl.reward.text import (
    DEFAULT_BACKBONE,
    TextConfig,
    TextItems,
    TextRewardModel,
    default_cache_dir,
)
from robustrl.reward.train import (
    Pairs,
    TrainConfig,
    apply_expo,
    check_loss,
    fit_preferences,
    fit_ratings,
    item_rewards,
)

__all__ = ["add_arguments", "format_report", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` and ``eval`` subcommands to ``parser`` (the ``reward`` subparser)."""
    sub = parser.add_subparsers(dest="reward_command", metavar="{train,eval}", required=True)
    formats = ["auto", *format_names()]

    t = sub.add_parser("train", help="train a text reward model from preferences or ratings")
    t.add_argument("--data", required=True, help="JSONL / JSON (optionally .gz) file")
    t.add_argument("--format", default="auto", choices=formats, help="data format (auto: guess)")
    t.add_argument("--loss", required=True, help=f"one of: {', '.join(loss_names())}")
    t.add_argument(
        "--loss-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="loss parameter, repeatable (e.g. lam=0.3, ties=skip, tau_max=4)",
    )
    t.add_argument("--out", required=True, help="folder to write the model into")
    t.add_argument(
        "--backbone",
        default=DEFAULT_BACKBONE,
        help="packaged 'all-MiniLM-L6-v2' or a local Hugging Face model folder",
    )
    t.add_argument("--finetune", action="store_true", help="train the backbone too (slow on CPU)")
    t.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="tokens per text, longer ones truncated (default 256, MiniLM's limit); "
        "fewer make fine-tuning on a CPU faster and lighter",
    )
    t.add_argument(
        "--features",
        default="pair",
        choices=["pair", "response"],
        help="pair: response and prompt⊙response embeddings; response: response only",
    )
    t.add_argument(
        "--hidden",
        default="",
        help="hidden widths of the head, e.g. 256,256 (default: linear head)",
    )
    t.add_argument(
        "--attributes",
        default="helpfulness",
        help="regression targets, comma-separated from " + ",".join(HELPSTEER2_ATTRIBUTES),
    )
    t.add_argument(
        "--init",
        help="start from this saved model, head included (an attribute "
        "head becomes a scalar reward: HelpSteer2-Preference's recipe)",
    )
    t.add_argument(
        "--expo",
        type=float,
        metavar="ALPHA",
        help="with --init: save θ_init + ALPHA·(θ − θ_init) (ExPO, ≈1.5)",
    )
    t.add_argument("--epochs", type=int, help="default 30 (frozen) / 2 (fine-tuning)")
    t.add_argument("--lr", type=float, help="default 1e-3 (frozen) / 2e-5 (fine-tuning)")
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--weight-decay", type=float, default=0.0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument(
        "--val-frac",
        type=float,
        default=0.0,
        help="hold out this fraction of prompts and report accuracy on them",
    )
    _common(t)

    e = sub.add_parser("eval", help="RewardBench-style accuracy of a saved model on pairs")
    e.add_argument("--model", required=True, help="folder written by `reward train`")
    e.add_argument("--data", required=True, help="preference file")
    e.add_argument("--format", default="auto", choices=formats)
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _common(e)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip malformed rows (reported with file:line and counted)",
    )
    p.add_argument("--cache-dir", type=Path, help="embedding cache (default: ~/.cache/robustrl)")
    p.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    """Run ``reward train`` or ``reward eval``; returns the exit status."""
    if args.reward_command == "train":
        return _train(args)
    return _eval(args)


# ----------------------------------------------------------------------------------------


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _loss_params(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, eq, val = item.partition("=")
        if not eq or not key:
            raise RobustRLError(f"--loss-param expects KEY=VALUE, got {item!r}")
        out[key.strip()] = _value(val.strip())
    return out


def _hidden(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(h) for h in text.split(",") if h.strip())
    except ValueError:
        raise RobustRLError(f"--hidden expects comma-separated integers, got {text!r}") from None


def _train(args: argparse.Namespace) -> int:
    if args.expo is not None and not args.init:
        raise RobustRLError("--expo extrapolates from an initial model: give --init DIR too")
    if args.max_length is not None and args.max_length < 1:
        raise RobustRLError(f"--max-length must be a positive number of tokens, "
                            f"got {args.max_length}")
    params = _loss_params(args.loss_param)
    loss = make_loss(args.loss, **params)
    regression = isinstance(loss, RegressionLoss)
    cfg = TrainConfig(
        epochs=args.epochs or (2 if args.finetune else 30),
        batch_size=args.batch_size,
        lr=args.lr or (2e-5 if args.finetune else 1e-3),
        weight_decay=args.weight_decay,
        seed=args.seed,
        device=args.device,
    )
    cache = None if args.finetune else (args.cache_dir or default_cache_dir())
    # data first: a bad file should stop the run before a backbone is loaded
    if regression:
        ratings = load_ratings(args.data, args.format, args.skip_bad)
        attrs = _attributes(args.attributes)
        prompts, responses = ratings.prompts, ratings.responses
    else:
        check_loss(loss)
        data = load_preferences(args.data, args.format, args.skip_bad)
        train, val = (
            split_by_prompt(data, args.val_frac, args.seed) if args.val_frac else (data, None)
        )
        prompts, responses = data.prompts, data.responses

    torch.manual_seed(args.seed)
    if args.init:
        model = TextRewardModel.load(args.init)
        if not isinstance(loss, MeanVarLoss | RegressionLoss):
            model.net = scalar_from_attributes(model.net)
        model.finetune = args.finetune
        model.encoder.requires_grad_(args.finetune)
        if args.max_length:
            model.cfg.max_length = args.max_length  # the encoder reads this same config
    else:
        head = "meanvar" if isinstance(loss, MeanVarLoss) else "scalar"
        model = TextRewardModel(
            TextConfig(
                backbone=args.backbone,
                features=args.features,
                **({"max_length": args.max_length} if args.max_length else {}),
            ),
            RewardNetConfig(
                hidden=_hidden(args.hidden),
                head="attributes" if regression else head,
                attributes=attrs if regression else (),
            ),
            finetune=args.finetune,
        )
    init = {k: v.clone() for k, v in model.state_dict().items()} if args.expo is not None else None
    if args.finetune:
        items = TextItems(prompts, responses)
    else:
        items = model.featurize(prompts, responses, cache)

    metrics: dict[str, Any] = {}
    if regression:
        cols = [ratings.attributes.index(a) for a in model.net.cfg.attributes]
        result = fit_ratings(model, items, torch.from_numpy(ratings.targets[:, cols]), cfg)
        n_train, skipped = len(ratings), ratings.skipped
    else:
        result = fit_preferences(model, items, Pairs.from_data(train), loss, cfg)
        n_train, skipped = len(train), data.skipped
        if init is not None:
            apply_expo(init, model, args.expo)
        rewards = item_rewards(model, items, 256).cpu().numpy()
        metrics["train"] = _report(rewards, train)
        if val is not None:
            metrics["val"] = _report(rewards, val)
            metrics["val"]["length_baseline"] = length_baseline(val)["accuracy"]
        if result.outliers is not None:
            metrics["outliers"] = int(result.outliers.sum())
            _write_outliers(Path(args.out) / "outliers.csv", train, result.outliers)

    metrics.update(
        n_train=n_train, skipped=skipped, seconds=result.seconds, final_loss=result.losses[-1]
    )
    extra = {
        "loss": args.loss,
        "loss_params": params,
        "train": asdict(cfg),
        "data": {"path": str(args.data), "format": args.format},
        "init": args.init,
        "expo": args.expo,
    }
    out = Path(args.out)
    model.save(out, extra)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    atomic_write_text(out / "metrics.csv", _csv(result.losses))
    print(
        f"trained {args.loss} on {n_train} {'ratings' if regression else 'pairs'} "
        f"in {result.seconds:.1f}s (final loss {result.losses[-1]:.4f}); saved to {out}"
    )
    if "val" in metrics:
        print(format_report(metrics["val"], title="held-out"))
    if "outliers" in metrics:
        print(
            f"R3M flagged {metrics['outliers']} of {n_train} training pairs as outliers "
            f"(source lines in {out / 'outliers.csv'})"
        )
    return 0


def _attributes(text: str) -> tuple[str, ...]:
    names = tuple(a.strip() for a in text.split(",") if a.strip())
    bad = [a for a in names if a not in HELPSTEER2_ATTRIBUTES]
    if bad or not names:
        raise RobustRLError(
            f"unknown attribute {bad[0] if bad else text!r}; "
            f"choose from {', '.join(HELPSTEER2_ATTRIBUTES)}"
        )
    return names


def _report(rewards: np.ndarray, data: PreferenceData) -> dict[str, Any]:
    return evaluate_pairs(rewards[data.chosen], rewards[data.rejected], data)


def _csv(losses: list[float]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["epoch", "loss"])
    w.writerows((i + 1, f"{v:.6f}") for i, v in enumerate(losses))
    return buf.getvalue()


def _write_outliers(path: Path, data: PreferenceData, outliers: np.ndarray) -> None:
    atomic_write_text(path, "line\n" + "".join(f"{line}\n" for line in data.line[outliers]))


def _eval(args: argparse.Namespace) -> int:
    model = TextRewardModel.load(args.model)
    model.to(args.device)
    data = load_preferences(args.data, args.format, args.skip_bad)
    cache = args.cache_dir or default_cache_dir()
    rewards = model.score(data.prompts, data.responses, cache).reward.cpu().numpy()
    report = _report(rewards, data)
    report["length_baseline"] = length_baseline(data)["accuracy"]
    report["skipped"] = data.skipped
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def format_report(report: dict[str, Any], title: str = "") -> str:
    """A RewardBench-style table: per subset, overall (micro), subset mean (macro)."""
    subsets = report["subsets"]
    width = max([len(s) for s in subsets] + [22])
    lines = [title] if title else []
    lines.append(f"{'subset':<{width}} {'n':>6} {'accuracy':>9}")
    if len(subsets) > 1:
        lines += [f"{s:<{width}} {v['n']:>6} {v['accuracy']:>9.3f}" for s, v in subsets.items()]
    lines.append(f"{'overall':<{width}} {report['n']:>6} {report['accuracy']:>9.3f}")
    if len(subsets) > 1:
        lines.append(f"{'subset mean':<{width}} {len(subsets):>6} {report['subset_mean']:>9.3f}")
    if "length_baseline" in report:
        lines.append(
            f"{'length baseline':<{width}} {report['n']:>6} {report['length_baseline']:>9.3f}"
        )
    if report.get("n_ties_excluded"):
        lines.append(
            f"({report['n_ties_excluded']} tie-labelled pairs excluded; "
            "equal rewards count as wrong)"
        )
    return "\n".join(lines)
