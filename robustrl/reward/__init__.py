"""Preference-based reward learning shared by RL segments, text reward models and HERON.

Losses work on reward differences Δ (:mod:`.losses`), labelers make synthetic preferences
from known rewards (:mod:`.labelers`), reward models map items to rewards (:mod:`.models`,
:mod:`.text`), datasets load real preference files (:mod:`.data`), and :mod:`.train` fits any
of them. ``robustrl reward train | eval`` lives in :mod:`.cli`.
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
from robustrl.reward.train import Pairs, TrainConfig, TrainResult, fit_preferences, fit_ratings

__all__ = [
    "AdaptiveLoss",
    "BTLoss",
    "DPOLoss",
    "FactorLabeler",
    "Flip",
    "Irrational",
    "Labeler",
    "LossOutput",
    "MarginBTLoss",
    "MeanVarLoss",
    "Pairs",
    "PreferenceData",
    "R3MLoss",
    "Rational",
    "RatingData",
    "RegressionLoss",
    "RewardNet",
    "RewardNetConfig",
    "RewardOutput",
    "ScaledBTLoss",
    "TrainConfig",
    "TrainResult",
    "evaluate_pairs",
    "fit_preferences",
    "fit_ratings",
    "length_baseline",
    "load_preferences",
    "load_ratings",
    "make_loss",
    "parse_labeler",
    "register_labeler",
    "split_by_prompt",
]
