"""Preference-based reward learning shared by RL segments, text reward models and HERON.

Losses work on reward differences Δ (:mod:`.losses`), labelers make synthetic preferences
from known rewards (:mod:`.labelers`), reward models map items to rewards (:mod:`.models`,
:mod:`.text`), datasets load real preference files (:mod:`.data`), and :mod:`.train` fits any
of them. :mod:`.heron` holds HERON's hierarchical comparison rule. RL from preferences (any
agent on a learned reward) is :mod:`.preference_loop`, with its reward model in
:mod:`.segment_model` and the env wrappers a run applies in :mod:`.wrappers`. The
``robustrl reward train | eval`` command lives in :mod:`robustrl.cli.reward`.
"""

from robustrl.reward.data import (
    PreferenceData,
    RatingData,
    evaluate_pairs,
    length_baseline,
    load_preferences,
    load_ratings,
    split_by_prompt,
)
from robustrl.reward.heron import HeronConfig, HeronLabeler, LevelStats, hierarchical_compare
from robustrl.reward.labelers import (
    FactorLabeler,
    Flip,
    Irrational,
    Labeler,
    Rational,
    parse_labeler,
    register_labeler,
)
from robustrl.reward.losses import (
    AdaptiveLoss,
    BTLoss,
    DPOLoss,
    LossOutput,
    MarginBTLoss,
    MeanVarLoss,
    R3MLoss,
    RegressionLoss,
    ScaledBTLoss,
    make_loss,
)
from robustrl.reward.models import RewardNet, RewardNetConfig, RewardOutput
from robustrl.reward.preference_loop import (
    PreferenceLoop,
    RewardConfig,
    build_loop,
    check_vectorization,
)
from robustrl.reward.train import Pairs, TrainConfig, TrainResult, fit_preferences, fit_ratings

__all__ = [
    "AdaptiveLoss",
    "BTLoss",
    "DPOLoss",
    "FactorLabeler",
    "Flip",
    "HeronConfig",
    "HeronLabeler",
    "Irrational",
    "Labeler",
    "LevelStats",
    "LossOutput",
    "MarginBTLoss",
    "MeanVarLoss",
    "Pairs",
    "PreferenceData",
    "PreferenceLoop",
    "R3MLoss",
    "Rational",
    "RatingData",
    "RegressionLoss",
    "RewardConfig",
    "RewardNet",
    "RewardNetConfig",
    "RewardOutput",
    "ScaledBTLoss",
    "TrainConfig",
    "TrainResult",
    "build_loop",
    "check_vectorization",
    "evaluate_pairs",
    "fit_preferences",
    "fit_ratings",
    "hierarchical_compare",
    "length_baseline",
    "load_preferences",
    "load_ratings",
    "make_loss",
    "parse_labeler",
    "register_labeler",
    "split_by_prompt",
]
