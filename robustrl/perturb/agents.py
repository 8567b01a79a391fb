"""Other agents as the perturbation: k agents no longer play the evaluated policy.

The replaced agents stay in the env's API (the evaluator still sends an action for every agent,
so its loop is unchanged); the wrapper overrides their actions. Their infos say
`"replaced": True`, so a runner can leave them out of the team's return.
"""

from __future__ import annotations

from typing import Any

from robustrl.core.errors import RobustRLError
from robustrl.perturb.base import Agent, EnvView, Perturbation, SpaceSampler, check_agents


class AdversaryAgents(Perturbation):
    """adversary-agents:k — k agents (default: the last k) play a random policy, or the
    `adversary` callable given to `apply()` (policy=frozen: an old/frozen policy;
    policy=adversary: an adversarially trained one, e.g. from
    `robustrl.bench.adversary.train_adversary`, which the bench trains itself for k = 1;
    the label is recorded in info)."""

    def bind(self, view: EnvView) -> None:
        self.view = view
        k = int(self.strength)
        if not view.multi:
            raise RobustRLError(f"adversary-agents needs a multi-agent (PettingZoo parallel) env; "
                                f"{view.name} is single-agent")
        if k >= len(view.agents):
            raise RobustRLError(f"adversary-agents:{k} leaves no evaluated agent; {view.name} has "
                                f"{len(view.agents)} agents, use k <= {len(view.agents) - 1}")
        names = self.spec.get("agents")
        if names is not None:
            self.targets = check_agents(self.spec, view, names)
            if len(self.targets) != k:
                raise RobustRLError(f"adversary-agents:{k} names {len(self.targets)} agent(s) in "
                                    f"agents=; give as many names as the strength k")
        else:
            self.targets = view.agents[len(view.agents) - k:] if k else ()
        self.policy = self.spec.get("policy")
        if self.policy != "random" and self.ctx.adversary is None:
            raise RobustRLError(f"adversary-agents,policy={self.policy} needs that policy: pass "
                                "adversary=callable(observation, agent) -> action to apply()")
        self.samplers = {a: SpaceSampler(view.action_space(a)) for a in self.targets}

    def params(self) -> dict[str, Any]:
        return {"k": len(self.targets), "agents": [str(a) for a in self.targets],
                "policy": self.policy}

    def agent_params(self, agent: Agent) -> dict[str, Any]:
        return {"replaced": True}

    def new_episode(self, rng):
        for s in self.samplers.values():
            s.seed(rng)

    def action(self, actions, last_obs, rng):
        if self.policy == "random":
            return {a: self.samplers[a].sample() for a in actions}
        return {a: self.ctx.adversary(last_obs.get(a), a) for a in actions}
