"""Perturbations for robustness evaluation, on Gymnasium and PettingZoo parallel envs alike.

    >>> from robustrl import perturb
    >>> env = perturb.apply(env, ["obs-gaussian:0.1", "dyn-mass:1.5,prob=0.5"], seed=0)
    >>> obs, info = env.reset(seed=1)
    >>> info["perturbation"]     # {'obs-gaussian': {'strength': 0.1, 'active': True, ...}, ...}

A perturbation is a spec string `kind:strength[,key=value...]` (`perturb.kinds()` lists them);
`pgd_attack` is the inner maximisation ERNIE's regularizer and `empirical_lipschitz` reuse;
`robustrl.perturb.adversary` is the env side of a malicious agent (adversary-agents,
policy=adversary) against a frozen multi-agent learner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from robustrl.perturb.base import KEY, Perturbation
from robustrl.perturb.spec import KINDS, PerturbationSpec, kinds, parse
from robustrl.perturb.wrappers import (
    GymPerturbation,
    ParallelPerturbation,
    PerturbationWrapper,
    applied,
    apply,
)

if TYPE_CHECKING:
    from robustrl.perturb.pgd import distance_per_sample, empirical_lipschitz, pgd_attack

__all__ = [
    "KEY",
    "KINDS",
    "GymPerturbation",
    "ParallelPerturbation",
    "Perturbation",
    "PerturbationSpec",
    "PerturbationWrapper",
    "applied",
    "apply",
    "distance_per_sample",
    "empirical_lipschitz",
    "kinds",
    "parse",
    "pgd_attack",
]

_TORCH = {"pgd_attack", "empirical_lipschitz", "distance_per_sample"}


def __getattr__(name: str) -> Any:
    # torch is imported only when the PGD functions are used, so listing kinds stays fast.
    if name in _TORCH:
        from robustrl.perturb import pgd

        return getattr(pgd, name)
    raise AttributeError(f"module 'robustrl.perturb' has no attribute '{name}'")
