"""Sharpness on one common objective (issue 21): the common next-item loss against each model's
own, the scale-free measures on a loss whose answers are known by hand, and the ratio table."""

import json
import math

import pytest
import torch
from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_sam.analysis import cli
from recbole_sam.analysis.objective import (
    BatchLoss,
    NextItemLoss,
    candidate_embeddings,
    common_batches,
    same_batches,
    seed_all,
    sequence_batch,
    sequence_encoder,
    training_sequences,
)
from recbole_sam.sharpness_ratios import ratio_interval, ratio_table, read_measurements
from recbole_sam.analysis.sharpness import sharpness_measures
from recbole_sam.config import SAMConfig
from recbole_sam.data.dataset import create_dataset
from recbole_sam.errors import ConfigError
from recbole_sam.registry import get_model


def build(model_name, config_dict):
    """An untrained model and its training data, on the tiny ml-100k slice."""
    config = SAMConfig(model_name, "ml-100k", config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    train, _, test = data_preparation(config, create_dataset(config))
    return get_model(model_name)(config, train._dataset), train, test


def measures_close(first, second, rel):
    assert first.keys() == second.keys()
    for key in first:
        assert first[key] == pytest.approx(second[key], rel=rel), key


# ----- the common objective against the models' own -----------------------------------------


def test_training_sequences_do_not_depend_on_the_training_scheme(tiny_config):
    _, sequence, _ = build("SASRec", dict(tiny_config, train_scheme="sequence"))
    _, prefix, _ = build("SASRec", dict(tiny_config, train_scheme="prefix"))
    rows = sequence._dataset.inter_feat  # one row per user: the whole training sequence
    order = torch.argsort(rows["user_id"])
    expected = (rows["item_id_list"][order], rows["item_length"][order], rows["item_id"][order])
    for found in (training_sequences(sequence._dataset), training_sequences(prefix._dataset)):
        for a, b in zip(found, expected):
            assert torch.equal(a, b)


def test_common_batches_depend_on_the_seed_and_avoid_the_input_items(tiny_config):
    _, train, _ = build("SASRec", tiny_config)
    first, again = common_batches(train._dataset, 64, 2, seed=1), common_batches(train._dataset, 64, 2, seed=1)
    other = common_batches(train._dataset, 64, 2, seed=2)
    assert same_batches(first, again) and not same_batches(first, other)
    for batch in first:
        real = batch.targets > 0
        assert int(real.sum()) == int(batch.item_seq_len.sum())  # a target at every real position
        in_input = (batch.negatives.unsqueeze(-1) == batch.item_seq.unsqueeze(1)).any(-1)
        assert in_input[real].float().mean() < 0.01  # redrawn while in the input (a few rounds)


def test_common_objective_equals_sasrecs_own_loss_when_it_is_that_loss(tiny_config):
    """SASRec trained with BCE (or CE) at every position: its own loss on a batch, with the
    negatives it draws, is the common objective on that batch with those negatives as the fixed
    ones; so are the sharpness measures."""
    model, train, _ = build("SASRec", dict(tiny_config, loss_type="BCE", train_scheme="sequence"))
    interaction = next(iter(train))
    seed = 3
    item_seq, item_seq_len = interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN]
    seed_all(seed)  # the draw BatchLoss makes for its batch 0 inside calculate_loss
    negatives = model.sample_negatives(item_seq[:, : int(item_seq_len.max())], interaction[model.USER_ID])
    batch = sequence_batch(item_seq, item_seq_len, interaction[model.POS_ITEM_ID], negatives)
    settings = dict(rho=0.05, iters=3, ascent_steps=2, seed=0, radius=0.5, directions=2)
    for loss_type in ("BCE", "CE"):
        model.loss_type = loss_type
        own = BatchLoss(model, [interaction], seed=seed)
        common = NextItemLoss(model, [batch], loss_type.lower(), train._dataset.item_num)
        assert common.value() == pytest.approx(own.value(), rel=1e-6)
        measures_close(sharpness_measures(model, common, **settings), sharpness_measures(model, own, **settings), 1e-4)
    # Other negatives: another function.
    other = sequence_batch(item_seq, item_seq_len, interaction[model.POS_ITEM_ID], torch.ones_like(negatives))
    assert NextItemLoss(model, [other], "bce", train._dataset.item_num).value() != pytest.approx(
        NextItemLoss(model, [batch], "bce", train._dataset.item_num).value()
    )


@pytest.mark.parametrize("model_name", ["SASRec", "CL4SRec", "S3Rec"])
def test_common_objective_scores_items_as_each_models_own_ranking(model_name, tiny_config):
    """The encoder and item table the common objective uses are those of the model's own
    ``full_sort_predict``: SASRec's, CL4SRec's (no mask token) and the fine-tuned S3Rec's."""
    stage = {"train_stage": "pretrain"} if model_name == "S3Rec" else {}
    model, train, test = build(model_name, dict(tiny_config, **stage))
    if model_name == "S3Rec":
        with pytest.raises(ConfigError, match="train_stage pretrain"):
            sequence_encoder(model)
        model.train_stage = "finetune"  # the same network; fine-tuning only changes the weights
    model.eval()
    interaction = next(iter(test))[0]
    item_seq, item_seq_len = interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN]
    with torch.no_grad():
        hidden = sequence_encoder(model)(item_seq, item_seq_len)
        last = hidden[torch.arange(len(item_seq)), item_seq_len - 1]
        scores = last @ candidate_embeddings(model, train._dataset.item_num).T
        torch.testing.assert_close(scores, model.full_sort_predict(interaction), rtol=1e-5, atol=1e-5)
    batches = common_batches(train._dataset, 64, 1, seed=0)
    for kind in ("bce", "ce"):
        assert math.isfinite(NextItemLoss(model, batches, kind, train._dataset.item_num).value())


def test_a_model_without_a_sasrec_encoder_is_refused():
    with pytest.raises(ConfigError, match="objective: Linear has no SASRec-shaped encoder"):
        sequence_encoder(torch.nn.Linear(2, 2))


# ----- scale-free measures, by hand ---------------------------------------------------------


class Weights(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, 1.0]], dtype=torch.float64))


class ScaledQuadratic:
    """L(W) = c · (½‖W‖² + 1): Hessian c·I, so every measure is known by hand."""

    def __init__(self, module, c):
        self.module, self.c = module, c

    def terms(self):
        yield self.c * (0.5 * (self.module.w**2).sum() + 1.0)

    def value(self):
        with torch.no_grad():
            return float(sum(self.terms()))

    def parameters(self):
        return [self.module.w]


def test_scale_free_measures_are_invariant_to_multiplying_the_loss():
    module = Weights()
    norm2 = float((module.w.detach() ** 2).sum())  # 15.25
    rho, radius = 0.05, 0.3
    settings = dict(rho=rho, iters=50, ascent_steps=5, seed=0, radius=radius, directions=3)
    found = {c: sharpness_measures(module, ScaledQuadratic(module, c), **settings) for c in (1.0, 7.5)}
    for c, measures in found.items():
        loss = c * (0.5 * norm2 + 1)
        # Hand values: λ = c, tr = 6c; the ball's maximum is at ρ·W/‖W‖ (SAM's first step):
        # c(ρ‖W‖ + ½ρ²); a filter-normalised d has ‖d‖ = ‖W‖, so the rise is ½ c r² ‖W‖².
        assert measures["loss"] == pytest.approx(loss)
        assert measures["top_eigenvalue"] == pytest.approx(c)
        assert measures["hessian_trace"] == pytest.approx(6 * c)
        assert measures["rho_sharpness"] == pytest.approx(c * (rho * math.sqrt(norm2) + 0.5 * rho**2))
        assert measures["loss_rise"] == pytest.approx(0.5 * c * radius**2 * norm2)
        assert measures["top_eigenvalue_over_loss"] == pytest.approx(1 / (0.5 * norm2 + 1))
        assert measures["relative_loss_rise"] == pytest.approx(0.5 * radius**2 * norm2 / (0.5 * norm2 + 1))
    scale_free = ["top_eigenvalue_over_loss", "hessian_trace_over_loss", "rho_sharpness_over_loss", "relative_loss_rise"]
    for key in scale_free:
        assert found[7.5][key] == pytest.approx(found[1.0][key], rel=1e-9)
    assert found[7.5]["top_eigenvalue"] == pytest.approx(7.5 * found[1.0]["top_eigenvalue"])  # the raw one is not
    assert torch.equal(module.w, Weights().w)  # Θ restored


@pytest.mark.parametrize("radius, directions, key", [(0.0, 2, "radius"), (0.1, 0, "directions")])
def test_bad_rise_options_are_config_errors(radius, directions, key):
    module = Weights()
    with pytest.raises(ConfigError, match=key):
        sharpness_measures(module, ScaledQuadratic(module, 1.0), radius=radius, directions=directions)


# ----- the ratio table ----------------------------------------------------------------------

SETTINGS = dict(objective="bce", rho=0.05, iters=20, ascent_steps=10, batches=4, seed=0, radius=0.1, directions=4)


def fake_output(path, label, values_by_seed, settings=SETTINGS):
    """A sharpness JSON output: one checkpoint of ``label`` per training seed."""
    results = [
        dict(label=label, checkpoint=f"{label}-{seed}.pth", model="SASRec", dataset="Beauty", train_seed=seed, **values)
        for seed, values in values_by_seed.items()
    ]
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"settings": settings, "results": results}, f)
    return str(path)


def two_outputs():
    sasrec = fake_output("sasrec.json", "SASRec", {
        1: dict(loss=0.5, top_eigenvalue=2.0, rho_sharpness=0.3),
        2: dict(loss=0.5, top_eigenvalue=4.0, rho_sharpness=0.2),
        3: dict(loss=0.5, top_eigenvalue=8.0, rho_sharpness=0.1),
    })  # fmt: skip
    samrec = fake_output("samrec.json", "SAMRec", {
        1: dict(loss=0.6, top_eigenvalue=1.0, rho_sharpness=0.1),
        2: dict(loss=0.6, top_eigenvalue=2.0, rho_sharpness=0.1),
        3: dict(loss=0.6, top_eigenvalue=4.0, rho_sharpness=0.1),
    })  # fmt: skip
    return [sasrec, samrec]


def table_row(table, name):
    (row,) = [line for line in table.splitlines() if line.startswith(f"| {name} |")]
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_ratio_table_from_two_outputs(capsys):
    cli.main(["report", "--inputs", *two_outputs(), "--out", "table.md"])
    with open("table.md", encoding="utf-8") as f:
        table = f.read()
    assert capsys.readouterr().out.strip() == table.strip()
    assert "| measure | SASRec (n=3) | SAMRec (n=3) | SASRec ÷ SAMRec, 95% CI |" in table
    # Every seed's ratio is 2: the interval is [2, 2]; mean ± sample std of 2, 4, 8 and 1, 2, 4.
    name = "top eigenvalue λ (largest magnitude)"
    assert table_row(table, name) == [name, "4.667 ± 3.055", "2.333 ± 1.528", "2 [2, 2] paired"]
    # An output without λ_max: a dominant eigenvalue ≥ 0 is the largest one.
    assert table_row(table, "largest eigenvalue λ_max")[1:] == table_row(table, name)[1:]
    # Log-ratios log 3, log 2, 0: mean ± t(0.975, 2)·sd/√3, exponentiated.
    logs = [math.log(3), math.log(2), 0.0]
    mean = sum(logs) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)
    expected = f"{math.exp(mean):.4g} [{math.exp(mean - half):.4g}, {math.exp(mean + half):.4g}] paired"
    assert table_row(table, "rho-sharpness")[-1] == expected
    assert not [line for line in table.splitlines() if line.startswith("| Hessian trace |")]  # not measured
    # An output without the scale-free measures gets them from their parts: (2/0.5) ÷ (1/0.6) = 2.4.
    assert table_row(table, "λ / L (scale-free)")[1:] == ["9.333 ± 6.11", "3.889 ± 2.546", "2.4 [2.4, 2.4] paired"]


def test_ratio_intervals_without_pairs_or_with_one_seed():
    ratio, low, high, how = ratio_interval({1: 4.0, 2: 4.0}, {3: 2.0, 4: 2.0})  # no spread: Welch's half-width 0
    assert (ratio, low, high, how) == (pytest.approx(2.0), pytest.approx(2.0), pytest.approx(2.0), "unpaired")
    ratio, low, high, how = ratio_interval({1: 4.0, 2: 8.0}, {3: 2.0, 4: 3.0})
    assert how == "unpaired" and low < ratio < high and ratio == pytest.approx(math.sqrt(32) / math.sqrt(6))
    assert ratio_interval({1: 4.0}, {1: 2.0}) == (pytest.approx(2.0), None, None, "one seed")
    assert ratio_interval({1: -1.0, 2: 1.0}, {1: 1.0, 2: 1.0})[:3] == (None, None, None)


def test_ratio_table_refuses_bad_inputs():
    paths = two_outputs()
    with pytest.raises(ConfigError, match="baseline: 'GRU4Rec' is not one of the labels read"):
        ratio_table(read_measurements(paths), baseline="GRU4Rec")
    again = fake_output("again.json", "SAMRec", {1: dict(loss=0.6, top_eigenvalue=1.0)})
    with pytest.raises(ConfigError, match="SAMRec is measured twice on training seed 1"):
        ratio_table(read_measurements(paths + [again]))
    other = fake_output("other.json", "CL4SRec", {1: dict(loss=6.0)}, settings=dict(SETTINGS, rho=0.1))
    with pytest.raises(ConfigError, match="objective bce was measured with different settings"):
        ratio_table(read_measurements(paths + [other]))
    with open("junk.json", "w") as f:
        f.write("[]")
    with pytest.raises(ConfigError, match="'junk.json' is not a sharpness output"):
        read_measurements(["junk.json"])


def test_report_command_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["report", "--inputs", *two_outputs(), "--baseline", "X", "--out", "t.md"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("error: baseline: 'X'")
    import os

    assert not os.path.exists("t.md")
