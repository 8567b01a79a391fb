"""Spec strings: parse, canonical form, defaults and one-line errors."""

from __future__ import annotations

import pytest

from robustrl.core.errors import RobustRLError
from robustrl.perturb import KINDS, PerturbationSpec, kinds, parse
from robustrl.perturb.wrappers import FACTORIES

EXAMPLES = [
    "obs-gaussian:0.1",
    "obs-uniform:0.1",
    "obs-shift:-0.2",
    "obs-pgd:0.05,steps=3,norm=linf",
    "obs-pgd:0.5,norm=l2,objective=kl,step_size=0.1",
    "act-gaussian:0.1",
    "act-pra:0.15",
    "act-pra:0.3,mode=mix,source=adversary",
    "act-replace:0.05,agents=agent_0+agent_2",
    "dyn-mass:1.5,bodies=torso+thigh",
    "dyn-friction:0.5",
    "dyn-gravity:1.2",
    "dyn-gain:0.8",
    "dyn-inflow:1.5,route=flows/high.rou.xml",
    "dyn-speed:0.8",
    "dyn-damping:2",
    "dyn-maxspeed:0.5",
    "adversary-agents:1,policy=random",
    "adversary-agents:2,policy=adversary,agents=a+b",
    "reward-gaussian:0.1,start=100,prob=0.5",
]


@pytest.mark.parametrize("text", EXAMPLES)
def test_round_trip(text):
    spec = parse(text)
    assert parse(str(spec)) == spec
    assert str(parse(str(spec))) == str(spec)
    assert spec.kind == text.split(":")[0]


def test_values_and_defaults():
    spec = parse(" obs-pgd : 0.05 , steps = 5 , norm = l2 ")
    assert (spec.strength, spec.get("steps"), spec.get("norm")) == (0.05, 5, "l2")
    assert spec.get("objective") == "auto" and spec.start == 0 and spec.prob == 1.0
    assert str(spec) == "obs-pgd:0.05,steps=5,norm=l2"
    assert parse("act-pra").strength == 0.15
    assert parse("act-replace").strength == 0.05
    assert parse("adversary-agents").strength == 1
    assert parse("dyn-mass:1.5,bodies=torso+thigh").get("bodies") == ("torso", "thigh")
    assert parse("reward-gaussian:0.1,start=7,prob=0.25").start == 7
    assert parse("obs-gaussian:0.1") == parse("obs-gaussian:0.10,start=0,prob=1")
    assert parse(spec) is spec
    assert len({parse("obs-gaussian:0.1"), parse("obs-gaussian:0.10,prob=1")}) == 1


def test_with_strength_validates():
    spec = parse("act-replace:0.05,start=3")
    assert spec.with_strength(0.5) == parse("act-replace:0.5,start=3")
    with pytest.raises(RobustRLError, match=r"probability in \[0, 1\]"):
        spec.with_strength(2)


def test_kinds_listing_matches_factories():
    listing = kinds()
    assert set(listing) == set(KINDS) == set(FACTORIES)
    assert all(desc and "\n" not in desc for desc in listing.values())


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("obs-gausian:0.1", r"did you mean 'obs-gaussian'.*valid kinds: obs-gaussian"),
        ("frobnicate:1", r"unknown perturbation 'frobnicate'; valid kinds"),
        ("act-pra:1.5", r"out of range; it must be a probability in \[0, 1\]"),
        ("act-replace:-0.1", r"probability in \[0, 1\]"),
        ("obs-gaussian:-1", r"must be a number >= 0"),
        ("dyn-mass:0", r"must be a scale factor > 0"),
        ("dyn-friction:-2", r"scale factor > 0"),
        ("adversary-agents:1.5", r"integer >= 0"),
        ("obs-shift:nan", r"finite number"),
        ("obs-gaussian:abc", r"strength must be a number >= 0, got 'abc'"),
        ("dyn-mass", r"dyn-mass needs a strength .*e.g. dyn-mass:1.5"),
        ("obs-pgd:0.1,stpes=3", r"no option 'stpes'; did you mean 'steps'"),
        ("obs-pgd:0.1,steps", r"malformed option 'steps'.*key=value"),
        ("obs-pgd:0.1,steps=2,steps=3", r"given twice"),
        ("obs-pgd:0.1,steps=0", r"steps=0 must be >= 1"),
        ("obs-pgd:0.1,steps=1.5", r"steps must be an integer"),
        ("obs-pgd:0.1,norm=l3", r"norm must be one of linf, l2"),
        ("act-replace:0.1,prob=2", r"prob=2 must be a probability"),
        ("act-replace:0.1,start=-1", r"start=-1 must be >= 0"),
        ("dyn-friction:0.5,agents=a", r"no option 'agents'"),
        ("", r"empty perturbation spec"),
    ],
)
def test_errors_are_one_line(text, pattern):
    with pytest.raises(RobustRLError, match=pattern) as err:
        parse(text)
    assert "\n" not in str(err.value)


def test_spec_constructor_validates():
    with pytest.raises(RobustRLError, match="unknown perturbation"):
        PerturbationSpec("obs-noise", 0.1)
    assert PerturbationSpec("obs-gaussian", 0.1) == parse("obs-gaussian:0.1")
