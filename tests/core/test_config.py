"""The typed config layer: TOML/--set values checked against the dataclass schema."""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from robustrl.core.config import from_dict, parse_assignments, parse_value, replace, to_dict
from robustrl.core.errors import RobustRLError


@dataclass
class Inner:
    eps: float = 0.1
    method: Literal["none", "ernie"] = "none"


@dataclass
class Outer:
    lr: float = 3e-4
    steps: int = 10
    hidden: tuple[int, ...] = (64, 64)
    alpha: float | None = None
    flag: bool = False
    inner: Inner = field(default_factory=Inner)


def test_parse_values():
    assert parse_value("1e-3") == 1e-3
    assert parse_value("[64, 64]") == [64, 64]
    assert parse_value("true") is True
    assert parse_value("ernie") == "ernie"
    assert parse_assignments(["lr=0.1", "inner.eps=0.5"]) == {"lr": 0.1, "inner.eps": 0.5}
    with pytest.raises(RobustRLError, match="key=value"):
        parse_assignments(["lr"])


def test_replace_checks_keys_and_types():
    cfg = replace(Outer(), {"lr": 1, "hidden": [32], "inner.method": "ernie", "alpha": "none"})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.hidden == (32,) and cfg.inner.method == "ernie" and cfg.alpha is None
    with pytest.raises(RobustRLError, match="unknown config key 'lrr'; did you mean 'lr'"):
        replace(Outer(), {"lrr": 1})
    with pytest.raises(RobustRLError, match="steps: expected an integer"):
        replace(Outer(), {"steps": "many"})
    with pytest.raises(RobustRLError, match="flag: expected true or false"):
        replace(Outer(), {"flag": 1})
    with pytest.raises(RobustRLError, match="inner.method: 'pgd' is not one of"):
        replace(Outer(), {"inner.method": "pgd"})
    with pytest.raises(RobustRLError, match="unknown config key 'inner.epss'"):
        replace(Outer(), {"inner.epss": 1.0})


def test_roundtrip_through_dict():
    cfg = replace(Outer(), {"inner.eps": 0.3, "alpha": 0.2})
    assert from_dict(Outer, to_dict(cfg)) == cfg
