"""Every preference loss against a direct formula, R3M's closed form, adaptive τ's Newton step."""

from __future__ import annotations

import math

import pytest
import torch

from robustrl.core.errors import RobustRLError
from robustrl.reward.losses import (
    AdaptiveLoss,
    BTLoss,
    DPOLoss,
    MarginBTLoss,
    MeanVarLoss,
    R3MLoss,
    RegressionLoss,
    ScaledBTLoss,
    adaptive_tau,
    diverging_score,
    expo_extrapolate,
    loss_names,
    make_loss,
    meanvar_class_probs,
    preference_target,
    r3m_delta,
)

DELTAS = [-6.0, -2.5, -1.0, -0.3, 0.0, 0.05, 0.4, 1.2, 3.0, 7.0]


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def golden_min(f, lo: float, hi: float, iters: int = 80) -> float:
    """Minimiser of a unimodal f on [lo, hi] by golden-section search (no scipy)."""
    g = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    for _ in range(iters):
        if f(c) < f(d):
            b = d
        else:
            a = c
        c, d = b - g * (b - a), a + g * (b - a)
    return (a + b) / 2


@pytest.fixture(autouse=True)
def float64():
    """Exact comparisons with math: float64 for this module only."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture
def delta() -> torch.Tensor:
    return torch.tensor(DELTAS, requires_grad=True)


# --- BT family -----------------------------------------------------------------------------


def test_bt_margin_scaled_match_formulas(delta: torch.Tensor) -> None:
    m = torch.tensor([1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0])
    bt = [-math.log(sig(d)) for d in DELTAS]
    margin = [-math.log(sig(d - mi)) for d, mi in zip(DELTAS, m.tolist(), strict=True)]
    scaled = [-mi * math.log(sig(d)) for d, mi in zip(DELTAS, m.tolist(), strict=True)]
    for loss, want in [(BTLoss(), bt), (MarginBTLoss(), margin), (ScaledBTLoss(), scaled)]:
        out = loss(delta, m)
        assert out.per_pair.tolist() == pytest.approx(want, rel=1e-9)
        assert out.loss.item() == pytest.approx(sum(want) / len(want), rel=1e-9)
    # without strength, margin and scaled use m = 1
    assert MarginBTLoss()(delta).per_pair.tolist() == pytest.approx(
        [-math.log(sig(d - 1)) for d in DELTAS]
    )
    assert ScaledBTLoss()(delta).loss.item() == pytest.approx(BTLoss()(delta).loss.item())


def test_labels_orient_and_ties_soft_or_skip() -> None:
    d = torch.tensor([2.0, 2.0, 0.7, -1.0])
    label = torch.tensor([1.0, 0.0, 0.5, 0.5])
    want = [
        -math.log(sig(2.0)),
        -math.log(sig(-2.0)),  # label 0: the rejected item is better
        -0.5 * math.log(sig(0.7)) - 0.5 * math.log(sig(-0.7)),  # tie: soft target 0.5
        -0.5 * math.log(sig(-1.0)) - 0.5 * math.log(sig(1.0)),
    ]
    soft = BTLoss(ties="soft")(d, label=label)
    assert soft.per_pair.tolist() == pytest.approx(want)
    assert soft.loss.item() == pytest.approx(sum(want) / 4)
    skip = BTLoss(ties="skip")(d, label=label)
    assert skip.loss.item() == pytest.approx(sum(want[:2]) / 2)
    assert skip.per_pair[2:].tolist() == [0.0, 0.0]
    # all ties skipped: a zero loss that still back-propagates
    x = torch.zeros(3, requires_grad=True)
    out = BTLoss(ties="skip")(x, label=torch.full((3,), 0.5))
    out.loss.backward()
    assert out.loss.item() == 0.0 and x.grad is not None


def test_tie_gradient_pulls_delta_to_zero() -> None:
    d = torch.tensor([1.5, -2.0], requires_grad=True)
    BTLoss()(d, label=torch.full((2,), 0.5)).loss.backward()
    # d/dΔ of the soft-0.5 loss is σ(Δ) − 0.5, halved by the mean over 2 pairs
    assert d.grad.tolist() == pytest.approx([(sig(1.5) - 0.5) / 2, (sig(-2.0) - 0.5) / 2])


# --- R3M -----------------------------------------------------------------------------------


@pytest.mark.parametrize("lam", [0.1, 0.3, 0.5, 0.8])
def test_r3m_closed_form_delta_minimises_objective(lam: float) -> None:
    d = torch.tensor(DELTAS)
    closed = r3m_delta(d, lam)
    for di, ci in zip(DELTAS, closed.tolist(), strict=True):
        best = golden_min(lambda x, di=di: -math.log(sig(di + x)) + lam * x, 0.0, 40.0)
        assert ci == pytest.approx(best, abs=1e-6)
        assert ci == pytest.approx(max(math.log(1 / lam - 1) - di, 0.0))


@pytest.mark.parametrize("lam", [0.2, 0.5, 0.7])
def test_r3m_gradient_weight_is_min_of_bt_weight_and_lambda(lam: float, delta) -> None:
    out = R3MLoss(lam=lam)(delta)
    (out.loss * len(DELTAS)).backward()
    want = [-min(1 - sig(d), lam) for d in DELTAS]
    assert delta.grad.tolist() == pytest.approx(want, abs=1e-12)


def test_r3m_value_and_outliers() -> None:
    lam = 0.3
    d = torch.tensor(DELTAS)
    out = R3MLoss(lam=lam)(d)
    thr = math.log(1 / lam - 1)
    assert out.outliers.tolist() == [x < thr for x in DELTAS]
    want = []
    for x in DELTAS:
        dd = max(thr - x, 0.0)
        want.append(-math.log(sig(x + dd)) + lam * dd)
    assert out.per_pair.tolist() == pytest.approx(want)
    # a tie is never an outlier; label 0 flips which side counts as wrong
    lab = torch.tensor([1.0, 0.0, 0.5])
    o = R3MLoss(lam=0.5)(torch.tensor([-1.0, -1.0, -1.0]), label=lab).outliers
    assert o.tolist() == [True, False, False]


# --- Adaptive preference scaling -----------------------------------------------------------


def _f(d: float, tau: float, rho0: float, quadratic: bool) -> float:
    base = -tau * math.log(sig(d / tau))
    return base + (
        rho0 * tau * tau - tau * math.log(2) if quadratic else (rho0 - math.log(2)) * tau
    )


@pytest.mark.parametrize("rho0", [0.05, 0.1, 0.5])
@pytest.mark.parametrize("quadratic", [False, True])
def test_adaptive_newton_matches_numeric_minimiser(rho0: float, quadratic: bool) -> None:
    tau0, tau_max = 0.1, 4.0
    d = torch.tensor(DELTAS)
    tau = adaptive_tau(d, tau0, tau_max, rho0, steps=50, quadratic=quadratic)
    hi = 200.0 if quadratic else tau_max
    for di, ti in zip(DELTAS, tau.tolist(), strict=True):
        best = golden_min(lambda t, di=di: _f(di, t, rho0, quadratic), tau0, hi)
        assert _f(di, ti, rho0, quadratic) <= _f(di, best, rho0, quadratic) + 1e-9
        assert ti == pytest.approx(best, abs=2e-4)


def test_adaptive_default_steps_are_near_optimal() -> None:
    """The spec's 3–5 Newton steps from τ = 1 already land close to the optimum value."""
    d = torch.tensor(DELTAS)
    for steps in (3, 5):
        tau = adaptive_tau(d, 0.1, 4.0, 0.1, steps=steps)
        for di, ti in zip(DELTAS, tau.tolist(), strict=True):
            best = golden_min(lambda t, di=di: _f(di, t, 0.1, False), 0.1, 4.0)
            assert _f(di, ti, 0.1, False) - _f(di, best, 0.1, False) < 0.05


def test_adaptive_loss_value_and_gradient_detach_tau(delta: torch.Tensor) -> None:
    loss = AdaptiveLoss(tau0=0.1, tau_max=3.0, rho0=0.2, newton_steps=4)
    out = loss(delta)
    tau = adaptive_tau(delta, 0.1, 3.0, 0.2, 4).tolist()
    want = [_f(d, t, 0.2, False) for d, t in zip(DELTAS, tau, strict=True)]
    assert out.per_pair.tolist() == pytest.approx(want)
    assert out.tau.tolist() == pytest.approx(tau)
    (out.loss * len(DELTAS)).backward()
    # τ is a constant for the model: dℓ/dΔ = −σ(−Δ/τ)
    assert delta.grad.tolist() == pytest.approx(
        [-sig(-d / t) for d, t in zip(DELTAS, tau, strict=True)]
    )
    q = AdaptiveLoss(quadratic=True, rho0=0.3)(delta.detach())
    assert all(t >= 0.1 for t in q.tau.tolist())


# --- Regression, Mean-Var, DPO, ExPO -------------------------------------------------------


def test_regression_masks_missing_attributes() -> None:
    pred = torch.tensor([[1.0, 2.0, 3.0], [0.0, 1.0, 4.0]])
    target = torch.tensor([[1.5, float("nan"), 2.0], [0.0, 3.0, float("nan")]])
    out = RegressionLoss()(pred, target)
    assert out.loss.item() == pytest.approx((0.25 + 1.0 + 0.0 + 4.0) / 4)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    assert RegressionLoss()(pred, target, mask).loss.item() == pytest.approx((0.25 + 4.0) / 3)


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_meanvar_probs_and_kl_match_formula() -> None:
    mean, var = torch.tensor([0.8, -2.0]), torch.tensor([0.5, 2.0])
    probs = meanvar_class_probs(mean, var)
    edges = [-1.5, -0.5, 0.5, 1.5]
    for i in range(2):
        m, s = mean[i].item(), math.sqrt(var[i].item())
        cdf = [0.0] + [_phi((e - m) / s) for e in edges] + [1.0]
        want = [cdf[k + 1] - cdf[k] for k in range(5)]
        assert probs[i].tolist() == pytest.approx(want)
    three = meanvar_class_probs(mean, var, 3)
    assert three[:, 0].tolist() == pytest.approx((probs[:, 0] + probs[:, 1]).tolist())
    target = torch.tensor([[0.0, 1 / 3, 2 / 3], [1.0, 0.0, 0.0]])
    out = MeanVarLoss()(mean, var, target)
    want = [
        sum(p * math.log(p / q) for p, q in zip(t, qs, strict=True) if p > 0)
        for t, qs in zip(target.tolist(), three.tolist(), strict=True)
    ]
    assert out.per_pair.tolist() == pytest.approx(want)


def test_preference_target_bins() -> None:
    label = torch.tensor([1.0, 1.0, 0.5, 0.0, 0.0])
    m = torch.tensor([1.0, 3.0, 1.0, 1.0, 2.0])
    assert preference_target(label, m, 5).argmax(1).tolist() == [3, 4, 2, 1, 0]
    assert preference_target(label, None, 3).argmax(1).tolist() == [2, 2, 1, 0, 0]


def test_diverging_score() -> None:
    s = diverging_score(
        torch.tensor([2.0]), torch.tensor([4.0]), torch.tensor([0.5]), torch.tensor([1.0]), lam=0.5
    )
    assert s.item() == pytest.approx(1.5 - 0.5 * (2.0 + 1.0))


@pytest.mark.parametrize("name", ["dpo", "r3m-dpo", "ada-dpo"])
def test_dpo_family_is_inner_loss_on_beta_log_ratio(name: str) -> None:
    g = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (torch.randn(8, generator=g) * 3 for _ in range(4))
    loss = make_loss(name, beta=0.2)
    assert isinstance(loss, DPOLoss)
    d = 0.2 * ((pc - rc) - (pr - rr))
    assert loss(pc, pr, rc, rr).loss.item() == pytest.approx(loss.inner(d).loss.item())
    if name == "dpo":
        want = sum(-math.log(sig(x)) for x in d.tolist()) / 8
        assert loss(pc, pr, rc, rr).loss.item() == pytest.approx(want)


def test_expo_extrapolates_float_entries() -> None:
    reg = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    sbt = {"w": torch.tensor([2.0, 0.0]), "n": torch.tensor(5)}
    out = expo_extrapolate(reg, sbt, alpha=1.5)
    assert out["w"].tolist() == [2.5, -1.0]
    assert out["n"].item() == 5
    assert expo_extrapolate(reg, sbt, 1.0)["w"].tolist() == sbt["w"].tolist()
    with pytest.raises(RobustRLError, match="keys differ"):
        expo_extrapolate(reg, {"w": sbt["w"]})


# --- Registry ------------------------------------------------------------------------------


def test_make_loss_builds_every_name() -> None:
    for name in loss_names():
        assert make_loss(name) is not None
    assert make_loss("R3M", lam=0.2).lam == 0.2
    assert make_loss("scaled_bt", ties="skip").ties == "skip"


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("bt2", {}, "unknown loss 'bt2'; choose one of: bt, margin-bt"),
        ("r3m", {"lambda": 0.1}, "no parameter 'lambda'; its parameters: ties, lam"),
        ("r3m", {"lam": 1.5}, r"lam must be in \(0, 1\)"),
        ("bt", {"ties": "drop"}, "ties must be 'soft' or 'skip'"),
        ("adaptive", {"tau0": 2.0}, "tau0 <= 1 <= tau_max"),
        ("adaptive", {"rho0": "x"}, "bad parameter"),
        ("meanvar", {"lam": 1}, "no parameter 'lam'; its parameters: none"),
        ("dpo", {"beta": -1}, "beta must be > 0"),
    ],
)
def test_make_loss_errors_are_one_line(name: str, params: dict, match: str) -> None:
    with pytest.raises(RobustRLError, match=match) as e:
        make_loss(name, **params)
    assert "\n" not in str(e.value)
