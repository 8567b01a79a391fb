"""Mean-field Q-learning (MF-Q, Yang et al. 2018) for many homogeneous agents with discrete
actions (traffic grids), with ERNIE's distributionally robust critic target (`dro_rho > 0`).

Model. Agent i's Q-value depends on its own observation o_i, its action a_i and the mean action
ā_i of its neighbours: ā_i = (1 / |N(i)|) Σ_{k ∈ N(i)} onehot(a_k), a distribution over the
action set. As in MF-Q, ā_i is built from the neighbours' actions of the *previous* step (at
the first step of an episode it is uniform), so acting stays decentralized: every agent needs
only what its neighbours did last. One network is shared by all agents (parameter sharing),
input [normalized o_i | ā_i | agent one-hot], output one Q-value per own action.

Neighbours (`neighbourhood`): "auto" takes a traffic env's light graph (two lights are
neighbours when an edge of the SUMO network joins their junctions,
`robustrl.envs.traffic.neighbours`) and, for any other PettingZoo env, every other agent;
"all" is every other agent everywhere. An agent without neighbours sees a uniform ā.

Acting (`exploration`): "epsilon" is ε-greedy (ε falls linearly from eps_start to eps_end
over eps_decay_steps); "boltzmann" samples a ~ softmax(Q(o, ·, ā) / T), T falling from
temperature_start to temperature_end over the same eps_decay_steps. `act` with
deterministic=True (evaluation) is greedy in both modes. `act` / `act_array` remember the
neighbours' mean action of the actions they return, for the next call: call
`reset_mean_action()` at the start of an episode (left out, the first step of an episode sees
the last step of the previous one instead of a uniform ā). `policy_output` (what perturbation
attacks and ERNIE differentiate) uses that remembered ā, held constant, or a uniform one.

TD target (plain MF-Q). With ā' the neighbours' mean action of the actions just taken (the
mean action agent i sees at s'), and π the target policy, greedy on the online network (double
DQN) for "epsilon", softmax(Q / T) as in MF-Q for "boltzmann":

    y_i = r_i + γ (1 - term_i) V_i,    V_i = Σ_a π(a | o'_i, ā'_i) Q_target(o'_i, a, ā'_i)

Distributionally robust target (`dro_rho = rho > 0`). The expectation over the neighbours'
next behaviour is replaced by its worst case over a KL ball around their empirical next-action
distribution p = ā'_i. The value of one neighbour action b is the critic with the
neighbourhood playing b, under the same policy of agent i:

    v_i(b) = Σ_a π(a | o'_i, ā'_i) Q_target(o'_i, a, ā = onehot(b))

so E_{b~q}[v_i(b)] is MF-Q's pairwise decomposition (1/|N(i)|) Σ_k Q_i(s, a_i, a_k) of the
value when the neighbours draw their actions from q. The target moves the plain value by the
worst change of that pairwise value inside the ball:

    V_i^rho = V_i + min_{KL(q || p) <= rho} E_q[v_i(b)] - E_p[v_i(b)]

(`kl_worst_case` computes the minimum exactly, batched over samples and agents: |A| extra
forward passes of the target network, no Python loop over samples). The correction is 0 at
rho = 0 (the plain target), <= 0 and non-increasing in rho, and exact for a critic linear in
ā. Agent i's own next action is held at its plain-target policy (the adversary moves after it),
which is the more conservative order. Agents without neighbours get no correction.
`robust/dro_gap` logs the mean correction.

ERNIE's Lipschitz regularizer (`robust`, robustrl.robust) attaches to the Q network: target
"actor" perturbs each agent's own (normalized) observation; "critic" the same network's
observation and, with perturb_other_actions, also the neighbours' mean action (radius
action_eps, in probability units): robustness to what the neighbours do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robustrl.agents.base import Callback, Capabilities
from robustrl.agents.multiagent import MultiAgent
from robustrl.core.buffer import ReplayBuffer
from robustrl.core.checkpoint import load_state
from robustrl.core.episodes import MultiAgentStats
from robustrl.core.errors import RobustRLError
from robustrl.core.networks import mlp
from robustrl.core.normalizer import RunningMeanStd
from robustrl.robust import RobustConfig, attach, kl_worst_case


@dataclass
class MFQConfig:
    dro_rho: float = 0.0
    """KL radius rho of the distributionally robust target (worst case over the neighbours'
    next-action distribution); 0: plain MF-Q."""
    neighbourhood: Literal["auto", "all"] = "auto"
    """Whose mean action an agent sees: auto (traffic: lights joined by a road; other envs:
    every other agent) or all (every other agent)."""
    exploration: Literal["epsilon", "boltzmann"] = "epsilon"
    """Training-time acting and target policy: ε-greedy with a double-DQN target, or Boltzmann
    softmax(Q / T) with MF-Q's expected target. Evaluation is greedy either way."""
    lr: float = 5e-4
    buffer_size: int = 100_000
    """Joint transitions kept (each holds every agent's)."""
    batch_size: int = 64
    learning_starts: int = 1_000
    """Env steps of uniformly random actions before the first update."""
    train_freq: int = 1
    """Env steps between updates."""
    gradient_steps: int = 1
    gamma: float = 0.99
    target_update_interval: int = 500
    """Env steps between hard copies of the online network into the target."""
    eps_start: float = 1.0
    eps_end: float = 0.05
    eps_decay_steps: int = 10_000
    """Env steps over which ε (and T for boltzmann) fall linearly to their end values."""
    temperature_start: float = 1.0
    """Boltzmann temperature T at the start (in Q-value units)."""
    temperature_end: float = 0.05
    hidden: tuple[int, ...] = (64, 64)
    max_grad_norm: float = 10.0
    normalize_obs: bool = True
    """Running mean/std normalization of observations (raw ones are stored in the buffer)."""
    n_envs: int = 1
    """Env copies stepped together (traffic: copies beyond the first run in subprocesses)."""
    updates_per_step: float | None = field(default=None, metadata={"range": "> 0"})
    """With n_envs > 1: gradient updates per env step (n_envs x it per vector step); None:
    gradient_steps / train_freq, the single-env ratio."""
    log_interval: int = 1_000
    """Env steps between callbacks."""
    robust: RobustConfig = field(default_factory=RobustConfig)
    """ERNIE's adversarial Lipschitz regularizer on the Q network ("actor": own observation;
    "critic": observation and, with perturb_other_actions, the neighbours' mean action)."""

    def __post_init__(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise RobustRLError(f"mfq: {msg}")

        need(math.isfinite(self.dro_rho) and self.dro_rho >= 0,
             f"dro_rho must be >= 0 (a KL radius), got {self.dro_rho}")
        need(self.lr > 0, f"lr must be > 0, got {self.lr}")
        need(0 <= self.gamma <= 1, f"gamma must be in [0, 1], got {self.gamma}")
        for name in ("batch_size", "train_freq", "gradient_steps", "target_update_interval",
                     "n_envs", "log_interval", "eps_decay_steps"):
            need(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        need(self.learning_starts >= 0, f"learning_starts must be >= 0, got "
                                        f"{self.learning_starts}")
        need(self.buffer_size >= self.batch_size,
             f"buffer_size ({self.buffer_size}) must be >= batch_size ({self.batch_size})")
        for name in ("eps_start", "eps_end"):
            need(0 <= getattr(self, name) <= 1, f"{name} must be in [0, 1], got "
                                                f"{getattr(self, name)}")
        for name in ("temperature_start", "temperature_end"):
            need(getattr(self, name) > 0, f"{name} must be > 0, got {getattr(self, name)}")
        need(len(self.hidden) > 0 and all(h >= 1 for h in self.hidden),
             f"hidden must be a non-empty list of positive layer sizes, got {list(self.hidden)}")
        need(self.max_grad_norm > 0, f"max_grad_norm must be > 0, got {self.max_grad_norm}")


# ------------------------------------------------------------------------------- pieces


def neighbour_graph(env: Any, agents: list[str], neighbourhood: str = "auto"
                    ) -> dict[str, list[str]]:
    """{agent: neighbours}: a traffic env's light graph (`robustrl.envs.traffic.neighbours`)
    with "auto", otherwise (and for every non-traffic env) every other agent."""
    if neighbourhood == "auto":
        from robustrl.envs.traffic import neighbours

        try:  # in this process or in a worker; any other env has no light graph
            graph = neighbours(env)
        except RobustRLError:
            graph = None
        if graph is not None:
            return {a: [b for b in graph.get(a, []) if b in agents] for a in agents}
    return {a: [b for b in agents if b != a] for a in agents}


def neighbour_weights(graph: dict[str, list[str]], agents: list[str]) -> np.ndarray:
    """(N, N) row-normalized adjacency: row i averages over i's neighbours (all 0 if none)."""
    index = {a: j for j, a in enumerate(agents)}
    w = np.zeros((len(agents), len(agents)), np.float32)
    for i, a in enumerate(agents):
        for b in graph[a]:
            w[i, index[b]] = 1.0
    return w / np.maximum(w.sum(1, keepdims=True), 1.0)


def mean_actions(actions: np.ndarray, weights: np.ndarray, n_actions: int) -> np.ndarray:
    """Neighbours' mean one-hot action: actions (..., N) ints -> (..., N, n_actions).

    Agents without neighbours (an all-zero row of `weights`) get the uniform distribution."""
    one_hot = np.eye(n_actions, dtype=np.float32)[np.asarray(actions, np.int64)]
    mean = np.einsum("ij,...ja->...ia", weights, one_hot)
    lonely = weights.sum(1) == 0
    mean[..., lonely, :] = 1.0 / n_actions
    return mean.astype(np.float32)


def robust_value(plain: torch.Tensor, values: torch.Tensor, probs: torch.Tensor, rho: float,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """plain + min_{KL(q || p) <= rho} E_q[values] - E_p[values], over the last axis of
    `values` / `probs` (..., K); `mask` (...,) zeroes the correction where it is False."""
    worst, _ = kl_worst_case(values, probs, rho)
    expected = (probs.to(torch.float64) * values.to(torch.float64)).sum(-1)
    gap = (worst - expected).clamp(max=0.0).to(plain.dtype)
    if mask is not None:
        gap = gap * mask.to(plain.dtype)
    return plain + gap


# ------------------------------------------------------------------------------- learner


class MFQ(MultiAgent):
    """Mean-field Q-learning: Q(o_i, a_i, neighbours' mean action), optionally DRO-robust."""

    name = "mfq"
    Config = MFQConfig
    capabilities = Capabilities(agents="multi", learning="off-policy",
                                action_spaces=(gym.spaces.Discrete,), ernie=True, relabel=True,
                                learned_reward=True)
    STATE = ("q", "q_target", "opt", "obs_rms", "stats.episodes", "updates")

    def _build(self) -> None:
        cfg = self.config
        n, a = self.n_agents, self.act_dim
        self.graph = neighbour_graph(self._probe_env, self.agents, cfg.neighbourhood)
        self.weights = neighbour_weights(self.graph, self.agents)
        self.has_neighbours = torch.from_numpy(self.weights.sum(1) > 0).to(self.device)
        self.in_dim = self.obs_dim + a + n
        self.q = mlp(self.in_dim, cfg.hidden, a).to(self.device)
        self.q_target = mlp(self.in_dim, cfg.hidden, a).to(self.device)
        self.q_target.load_state_dict(self.q.state_dict())
        self.opt = torch.optim.Adam(self.q.parameters(), lr=cfg.lr)
        self.obs_rms = RunningMeanStd((self.obs_dim,))
        self.ernie = attach(cfg.robust, self.name, logits=False, critic=True,
                            critic_actions=True)
        # Joint transitions plus the neighbours' mean action each agent saw at s and sees at s'.
        self.buffer = ReplayBuffer(cfg.buffer_size, (n, self.obs_dim), (n,), np.int64,
                                   reward_shape=(n,), extras={"mean_actions": (n, a),
                                                              "next_mean_actions": (n, a)})
        self.stats = MultiAgentStats(cfg.n_envs, self.agents)
        self.obs: np.ndarray | None = None
        self.mean: np.ndarray | None = None  # the training envs' current ā (n_envs, N, A)
        self.acting_mean: np.ndarray | None = None  # what act() remembers between calls
        self.updates = 0

    # ----------------------------------------------------------------- inputs
    def uniform_mean(self, batch_shape: tuple[int, ...] = ()) -> np.ndarray:
        """The ā of an episode's first step: uniform over the actions, (..., N, A)."""
        return np.full((*batch_shape, self.n_agents, self.act_dim), 1.0 / self.act_dim,
                       np.float32)

    def mean_actions(self, actions: np.ndarray) -> np.ndarray:
        """Each agent's neighbours' mean one-hot of `actions` (..., N) -> (..., N, A)."""
        return mean_actions(actions, self.weights, self.act_dim)

    def reset_mean_action(self) -> None:
        """Forget the remembered ā of `act` (call at the start of an evaluation episode)."""
        self.acting_mean = None

    def _remembered(self, batch_shape: tuple[int, ...]) -> np.ndarray:
        shape = (*batch_shape, self.n_agents, self.act_dim)
        if self.acting_mean is not None:
            try:
                return np.array(np.broadcast_to(self.acting_mean, shape))
            except ValueError:
                pass
        return self.uniform_mean(batch_shape)

    def _x(self, obs: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """Network input [normalized obs | ā | agent one-hot] for raw obs (..., N, obs_dim)."""
        ids = torch.as_tensor(self.ids, device=obs.device).expand(*obs.shape[:-1], self.n_agents)
        if self.config.normalize_obs:
            obs = self.obs_rms.normalize(obs)
        return torch.cat([obs, mean.to(obs.dtype), ids], -1)

    # ----------------------------------------------------------------- acting
    def policy_output(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values for raw observations (..., n_agents, obs_dim), differentiable in obs; ā is
        the one `act` remembers (a constant), else uniform."""
        mean = torch.from_numpy(self._remembered(obs.shape[:-2])).to(obs.device)
        return self.q(self._x(obs, mean))

    def _schedule(self, start: float, end: float) -> float:
        frac = min(self.num_steps / self.config.eps_decay_steps, 1.0)
        return start + frac * (end - start)

    def epsilon(self) -> float:
        return self._schedule(self.config.eps_start, self.config.eps_end)

    def temperature(self) -> float:
        return self._schedule(self.config.temperature_start, self.config.temperature_end)

    @torch.no_grad()
    def act_array(self, obs: np.ndarray, deterministic: bool = True,
                  mean_action: np.ndarray | None = None) -> np.ndarray:
        """Actions for raw obs (..., N, obs_dim): greedy, or exploring (`exploration`) with
        deterministic=False. `mean_action` (..., N, A): the neighbours' mean action; None uses
        the remembered one and remembers the mean of the actions returned."""
        obs = np.asarray(obs, np.float32)
        remember = mean_action is None
        if remember:
            mean_action = self._remembered(obs.shape[:-2])
        mean_action = np.asarray(mean_action, np.float32)
        q = self.q(self._x(torch.from_numpy(obs).to(self.device),
                           torch.from_numpy(mean_action).to(self.device)))
        greedy = q.argmax(-1).cpu().numpy()
        if deterministic:
            actions = greedy
        elif self.config.exploration == "boltzmann":
            probs = torch.softmax(q.double() / self.temperature(), -1).cpu().numpy()
            u = self.rng.random((*probs.shape[:-1], 1))
            actions = np.minimum((probs.cumsum(-1) < u).sum(-1), self.act_dim - 1)
        else:
            explore = self.rng.random(greedy.shape) < self.epsilon()
            actions = np.where(explore, self.rng.integers(0, self.act_dim, greedy.shape), greedy)
        if remember:
            self.acting_mean = self.mean_actions(actions)
        return actions

    # ----------------------------------------------------------------- targets
    def _target_policy(self, q_online: torch.Tensor) -> torch.Tensor:
        if self.config.exploration == "boltzmann":
            return torch.softmax(q_online / self.temperature(), -1)
        return F.one_hot(q_online.argmax(-1), self.act_dim).to(q_online.dtype)

    @torch.no_grad()
    def next_values(self, next_obs: torch.Tensor, next_mean: torch.Tensor,
                    rho: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(V^rho, plain V) at s', each (..., N), for raw next observations (..., N, obs_dim)
        and the neighbours' mean action there (..., N, A); rho None: the config's dro_rho.
        See the module docstring for both formulas."""
        rho = self.config.dro_rho if rho is None else rho
        x = self._x(next_obs, next_mean)
        pi = self._target_policy(self.q(x))
        plain = (pi * self.q_target(x)).sum(-1)
        if rho <= 0:
            return plain, plain
        # Q_target(o', ., ā = onehot(b)) for every b at once: (..., N, A_b, A_own)
        a, lo = self.act_dim, self.obs_dim
        xb = x.unsqueeze(-2).repeat_interleave(a, dim=-2)
        xb[..., lo:lo + a] = torch.eye(a, dtype=x.dtype, device=x.device)
        v_b = (self.q_target(xb) * pi.unsqueeze(-2)).sum(-1)
        return robust_value(plain, v_b, next_mean, rho, self.has_neighbours), plain

    # ----------------------------------------------------------------- update
    def update(self) -> dict[str, torch.Tensor]:
        cfg = self.config
        b = self.buffer.sample(cfg.batch_size, self.rng, self.device)
        x = self._x(b["obs"], b["mean_actions"])
        q_all = self.q(x)
        q = q_all.gather(-1, b["actions"][..., None]).squeeze(-1)  # (B, N)
        v_next, v_plain = self.next_values(b["next_obs"], b["next_mean_actions"])
        target = b["rewards"] + cfg.gamma * (1 - b["terminated"]) * v_next
        loss = F.smooth_l1_loss(q, target)
        metrics: dict[str, torch.Tensor] = {"td_loss": loss.detach()}
        if cfg.dro_rho > 0:
            metrics["robust/dro_gap"] = (v_next - v_plain).mean()
        if self.ernie:  # lam * R(theta) of Q (robustrl.robust): own obs / obs + ā
            flat, clean = x.flatten(0, 1), q_all.flatten(0, 1)
            loss = loss + self.ernie.penalty("actor", self.q, flat,
                                             scale=self.robust_scale(flat, "own"), clean=clean)
            scale = self.robust_scale(flat, "own", self.act_dim)
            loss = loss + self.ernie.penalty("critic", self.q, flat, scale=scale, clean=clean)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.q.parameters(), cfg.max_grad_norm)
        self.opt.step()
        self.updates += 1
        metrics["q_mean"] = q.detach().mean()
        return {**metrics, **self.ernie.metrics()}

    # ----------------------------------------------------------------- loop
    def learn(self, total_steps: int, callback: Callback | None = None) -> MFQ:
        """`num_steps` counts env steps (one joint step of all agents in one env copy)."""
        cfg = self.config
        self.off_policy_learn(total_steps, callback, self.explore,
                              gradient_steps=cfg.gradient_steps, sync_targets=self._sync_target,
                              target_interval=cfg.target_update_interval,
                              log_extras=self._schedule_metrics)
        return self

    def start_envs(self, n: int, want_state: bool = False) -> tuple[np.ndarray, Any]:
        self.mean = self.uniform_mean((n,))
        return super().start_envs(n, want_state)

    def explore(self) -> tuple[np.ndarray, np.ndarray]:
        """This step's actions (stored as taken): uniform at first, then exploring with the
        training envs' current ā."""
        if self.num_steps < self.config.learning_starts:
            action = self.random_actions()
        else:
            action = self.act_array(self.obs, deterministic=False, mean_action=self.mean)
        return action, action

    def store_step(self, action: np.ndarray, env_action: np.ndarray,
                   **extras: np.ndarray) -> dict[str, Any]:
        """The joint transition with the ā each agent saw at s and sees at s'; a new episode
        starts from a uniform ā."""
        next_mean = self.mean_actions(action)
        out = super().store_step(action, env_action, mean_actions=self.mean,
                                 next_mean_actions=next_mean)
        self.mean = next_mean
        for i in out["final_obs"]:
            self.mean[i] = 1.0 / self.act_dim
        return out

    def _sync_target(self) -> None:
        self.q_target.load_state_dict(self.q.state_dict())

    def _schedule_metrics(self) -> dict[str, float]:
        if self.config.exploration == "boltzmann":
            return {"temperature": self.temperature()}
        return {"epsilon": self.epsilon()}

    # ----------------------------------------------------------------- checkpoint
    def state_names(self) -> tuple[str, ...]:
        return self.STATE + ("graph",)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("graph", self.graph) != self.graph:
            raise RobustRLError("mfq: this checkpoint was trained with another neighbour graph "
                                "than this env's")
        load_state(self, state, self.STATE, optional=("buffer",))


__all__ = ["MFQ", "MFQConfig", "mean_actions", "neighbour_graph",
           "neighbour_weights", "robust_value"]
