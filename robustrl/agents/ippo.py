"""IPPO (de Witt et al. 2020): MAPPO with per-agent critics, each seeing only its agent's own
observation (and id). Everything else — the shared actor, the clipped update, the loop — is
MAPPO's (robustrl.agents.mappo)."""

from __future__ import annotations

from dataclasses import dataclass

from robustrl.agents.mappo import MAPPO, MAPPOConfig


@dataclass
class IPPOConfig(MAPPOConfig):
    centralized_critic: bool = False
    """False (IPPO): each agent's critic sees only its own observation."""


class IPPO(MAPPO):
    """Independent PPO: a shared actor, each agent's critic on its own observation."""

    name = "ippo"
    Config = IPPOConfig


__all__ = ["IPPO", "IPPOConfig"]
