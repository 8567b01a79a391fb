"""Robust training pieces any agent can use by configuration.

- `ernie`: ERNIE's adversarial Lipschitz regularizer with the Stackelberg gradient
  (`RobustConfig` is the `robust` sub-config of every learner whose capabilities say
  `ernie`: `--set robust.method=ernie`; `robustrl agents` lists them).
- `meanfield`: the distributionally robust mean-field target (worst case over a KL ball
  around the neighbours' mean-action distribution).
"""

from robustrl.robust.ernie import Ernie, RobustConfig, attach, perturbation, regularizer
from robustrl.robust.meanfield import kl_worst_case

__all__ = ["Ernie", "RobustConfig", "attach", "kl_worst_case", "perturbation", "regularizer"]
