"""obs-transfer: the PGD attack computed on a surrogate policy, applied to the evaluated one.

A regularized policy can look robust to white-box PGD by making its own gradients
uninformative (gradient masking). A transfer attack takes its gradients from another policy,
e.g. the unregularized baseline of the same env and seed, and feeds the perturbed observation
to the evaluated policy; the robust score is the worst of the white-box and transfer attacks.

The ball is the evaluated agent's (its `obs_scale`), so eps means the same as in obs-pgd and a
surrogate that is the evaluated policy itself gives exactly the white-box attack. Loading the
surrogate from `surrogate=RUN_DIR` happens above this layer (robustrl.train.eval_env, the
bench), which passes its policy function as `surrogate_fn` to `robustrl.perturb.apply`.
"""

from __future__ import annotations

from typing import Any

from robustrl.core.errors import RobustRLError
from robustrl.perturb.observation import ObsPGD


class ObsTransfer(ObsPGD):
    """obs-transfer: obs-pgd whose gradients come from `surrogate_fn`."""

    RNG_KIND = "obs-pgd"
    """Draw obs-pgd's random starts, so the two attacks differ only in where the gradients
    come from (paired on the same episodes)."""

    def _attacked(self) -> Any:
        if self.ctx.surrogate_fn is None:
            raise RobustRLError(
                "obs-transfer needs the surrogate's policy: give surrogate=RUN_DIR (robustrl "
                "evaluate and the bench load it), or pass surrogate_fn= to robustrl.perturb.apply")
        return self.ctx.surrogate_fn
