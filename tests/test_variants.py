"""The recommender variants (sam_params, helen, saf): hand-checked maths on tiny models, then
inside RecBole's loop on a small slice of ml-100k (checkpoints and resume included)."""

import os

import numpy as np
import pytest
import torch
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed
from torch import nn

from recbole_sam.cli import main
from recbole_sam.config import SAMConfig
from recbole_sam.errors import ConfigError
from recbole_sam.optim import SAM
from recbole_sam.registry import get_model
from recbole_sam.trainer import SAMTrainer
from recbole_sam.trajectory import TrajectoryLoss, captured_calls
from recbole_sam.variants import helen_row_scale, parameter_groups, training_item_counts


class Tiny(nn.Module):
    """An embedding table, a LayerNorm, a dropout and a linear layer: every kind of parameter."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.item_embedding = nn.Embedding(4, 3)
        self.LayerNorm = nn.LayerNorm(3)
        self.dropout = nn.Dropout(0.5)
        self.linear = nn.Linear(3, 2)

    def forward(self, items):
        return self.linear(self.dropout(self.LayerNorm(self.item_embedding(items))))

    def calculate_loss(self, items):
        return (self.forward(items) ** 2).sum()


ITEMS = torch.tensor([1, 2, 2, 3])


def named(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def gradients(model):
    model.zero_grad()
    model.eval()  # no dropout: the hand computation below is deterministic
    model.calculate_loss(ITEMS).backward()
    return {name: p.grad.detach().clone() for name, p in model.named_parameters()}


def norm(tensors):
    return torch.sqrt(sum((t**2).sum() for t in tensors))


@pytest.mark.parametrize(
    "which, perturbed",
    [
        ("dense", {"LayerNorm.weight", "LayerNorm.bias", "linear.weight", "linear.bias"}),
        ("norm", {"LayerNorm.weight", "LayerNorm.bias"}),
        ("all", {"item_embedding.weight", "LayerNorm.weight", "LayerNorm.bias", "linear.weight", "linear.bias"}),
    ],
)
def test_sam_params_perturbs_only_the_chosen_parameters_and_descends_on_all(which, perturbed):
    model, rho, lr = Tiny(), 0.4, 0.1
    theta, g = named(model), gradients(model)
    opt = SAM(parameter_groups(model, which), torch.optim.SGD, rho=rho, lr=lr)
    gradients(model)
    opt.first_step(zero_grad=True)
    g_norm = norm([g[name] for name in perturbed])  # the norm over the perturbed parameters only
    for name, p in model.named_parameters():
        expected = theta[name] + rho * g[name] / g_norm if name in perturbed else theta[name]
        torch.testing.assert_close(p.detach(), expected)
    assert opt.last_ascent_norm == pytest.approx(rho)

    ascent_point = named(model)
    g_ascent = gradients(model)
    opt.second_step()
    for name, p in model.named_parameters():  # every parameter descends, from Θ, with ∇L(Θ + Δ)
        torch.testing.assert_close(p.detach(), theta[name] - lr * g_ascent[name])
    assert any(not torch.equal(ascent_point[name], theta[name]) for name in perturbed)


def test_sam_params_that_select_nothing_is_a_config_error():
    gru = nn.Sequential(nn.Embedding(5, 3), nn.GRU(3, 3))
    with pytest.raises(ConfigError, match=r"sam_params: 'norm' selects nothing .* allowed: all, dense, norm"):
        parameter_groups(gru, "norm")
    with pytest.raises(ConfigError, match=r"sam_params: 'some' is not one of all, dense, norm"):
        parameter_groups(gru, "some")


def test_helen_row_scale_matches_its_formula_on_a_hand_made_table():
    counts = [0, 10, 5, 1, 3]  # item 0 is padding
    # s_i = max(n_i / max_j n_j, bound): 0/10, 10/10, 5/10, 1/10, 3/10 against bound 0.25
    expected = [0.25, 1.0, 0.5, 0.25, 0.3]
    torch.testing.assert_close(helen_row_scale(counts, 0.25), torch.tensor(expected))
    # A table with one row more (BERT4Rec's mask token): that row has n = 0.
    torch.testing.assert_close(helen_row_scale(counts, 0.25, rows=6), torch.tensor(expected + [0.25]))


def test_helen_ascent_scales_each_row_and_normalises_the_table_by_its_own_gradient():
    model, rho = Tiny(), 0.3
    theta, g = named(model), gradients(model)
    scale = helen_row_scale([0, 4, 2, 1], 0.3)  # [0.3, 1.0, 0.5, 0.3]
    opt = SAM(model.parameters(), torch.optim.SGD, rho=rho, lr=0.1)
    opt.set_row_scale(model.item_embedding.weight, scale)
    gradients(model)
    opt.first_step()
    table = "item_embedding.weight"
    expected_table = theta[table] + rho * scale.unsqueeze(1) * g[table] / norm([g[table]])
    torch.testing.assert_close(model.item_embedding.weight.detach(), expected_table)
    g_all = norm(g.values())  # the other parameters: SAM's ascent, the norm over all (Helen's code)
    for name, p in model.named_parameters():
        if name != table:
            torch.testing.assert_close(p.detach(), theta[name] + rho * g[name] / g_all)


def test_trajectory_regulariser_is_zero_for_the_same_model_even_with_dropout():
    model = Tiny()
    model.train()  # dropout on: the past model must see the same masks
    trajectory = TrajectoryLoss(model, weight=0.5, lag=1)
    trajectory.end_epoch()
    trajectory.start_epoch()
    assert trajectory.past is not None
    loss, r = trajectory.regulariser(ITEMS, model.calculate_loss)
    assert r.item() == 0.0

    # Moved weights: R is the mean squared difference of the forward outputs, by hand.
    with torch.no_grad():
        model.linear.bias.add_(torch.tensor([0.1, -0.2]))
    torch.manual_seed(3)
    _, r = trajectory.regulariser(ITEMS, model.calculate_loss)
    torch.manual_seed(3)
    current = model.forward(ITEMS)
    torch.manual_seed(3)
    past = trajectory.past.forward(ITEMS)
    torch.testing.assert_close(r, ((current - past) ** 2).mean())
    assert r.item() > 0
    r.backward()
    assert model.linear.bias.grad is not None and trajectory.past.linear.bias.grad is None


def test_trajectory_loss_waits_lag_epochs_and_uses_the_model_lag_epochs_back():
    model = Tiny()
    trajectory = TrajectoryLoss(model, weight=1.0, lag=2)
    weights = []
    for epoch in range(3):
        trajectory.start_epoch()
        assert (trajectory.past is None) == (epoch < 2)
        if epoch == 2:  # the weights at the end of epoch 0
            torch.testing.assert_close(trajectory.past.linear.bias, weights[0])
        with torch.no_grad():
            model.linear.bias.add_(1.0)
        weights.append(model.linear.bias.detach().clone())
        trajectory.end_epoch()


def test_captured_calls_records_the_outermost_call_only_and_restores_the_model():
    model = Tiny()
    with captured_calls(model) as calls:
        model(ITEMS)
    assert [call.name for call in calls] == ["forward"] and calls[0].outputs[0].shape == (4, 2)
    assert "forward" not in model.__dict__


# -- inside RecBole's loop --------------------------------------------------------------------


def build(config_dict):
    config = SAMConfig("SASRec", "ml-100k", config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    data = data_preparation(config, create_dataset(config))
    init_seed(config["seed"], config["reproducibility"])
    model = get_model("SASRec")(config, data[0]._dataset).to(config["device"])
    return SAMTrainer(config, model), data


def test_training_item_counts_are_the_training_split_only(tiny_config):
    config = SAMConfig("SASRec", "ml-100k", config_dict=tiny_config)
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    counts = training_item_counts(train._dataset)
    # Every interaction of the kept users, less each user's validation and test target.
    every = np.bincount(dataset.inter_feat[dataset.iid_field].numpy(), minlength=dataset.item_num)
    held_out = np.concatenate([split._dataset.inter_feat[dataset.iid_field].numpy() for split in (valid, test)])
    expected = every - np.bincount(held_out, minlength=dataset.item_num)
    np.testing.assert_array_equal(counts, expected)
    assert counts[0] == 0 and counts.sum() > 0


def test_helen_trainer_sets_the_item_rows_scale(tiny_config):
    trainer, data = build(dict(tiny_config, epochs=1, sam_variant="helen", helen_bound=0.2))
    trainer.fit(data[0], saved=False)
    scale = trainer.optimizer.row_scales[trainer.model.item_embedding.weight]
    assert scale.max().item() == 1.0 and scale.min().item() == pytest.approx(0.2)
    assert trainer.sam_history[0]["ascents"] == len(data[0])


def test_saf_trainer_takes_one_pass_per_batch_and_logs_the_trajectory_loss(tiny_config):
    trainer, data = build(dict(tiny_config, epochs=2, sam_variant="saf", saf_weight=1.0, saf_lag=1))
    calls = []
    original = trainer.model.calculate_loss
    trainer.model.calculate_loss = lambda interaction: calls.append(1) or original(interaction)
    trainer.fit(data[0], saved=False)
    assert len(calls) == 2 * len(data[0])  # no second pass of the trained model
    assert "trajectory" not in trainer.sam_history.get(0, {})  # off in the first saf_lag epochs
    assert trainer.sam_history[1]["trajectory"] > 0
    assert "ascents" not in trainer.sam_history[1]


def test_rho_schedule_composes_with_sam_params(tiny_config):
    # linear: rho · (epoch + 1) / epochs, and the ascent of the perturbed subset has that norm.
    trainer, data = build(dict(tiny_config, epochs=2, rho=0.4, sam_params="norm", rho_schedule="linear"))
    trainer.fit(data[0], saved=False)
    assert trainer.sam_history[0]["ascent_norm"] == pytest.approx(0.2, rel=1e-4)
    assert trainer.sam_history[1]["ascent_norm"] == pytest.approx(0.4, rel=1e-4)


def test_helen_with_a_partial_sam_params_is_a_config_error(tiny_config):
    with pytest.raises(ConfigError, match="sam_params: 'dense'.*allowed with helen: all"):
        build(dict(tiny_config, sam_variant="helen", sam_params="dense"))


def parameters(model):
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize(
    "variant",
    [
        {"sam_params": "dense"},
        {"sam_params": "norm", "sam_variant": "asam"},
        {"sam_variant": "helen"},
        {"sam_variant": "saf", "saf_weight": 1.0, "saf_lag": 1, "rho_schedule": "linear"},
    ],
    ids=["dense", "norm-asam", "helen", "saf"],
)
def test_resume_restores_the_optimizer_state_of_each_variant(variant, tiny_config):
    config = dict(tiny_config, epochs=1, rho=0.3, **variant)
    original, data = build(config)
    original.fit(data[0], saved=True)  # epoch 0; its checkpoint holds the optimizer's state
    checkpoint = original.saved_model_file

    def continue_one_epoch(trainer, train_data):
        trainer.epochs = 2
        init_seed(11, True)
        trainer.fit(train_data, saved=False)
        return parameters(trainer.model)

    original.start_epoch = 1
    expected = continue_one_epoch(original, build(config)[1][0])

    resumed, data = build(config)
    resumed.resume_checkpoint(checkpoint)
    assert resumed.start_epoch == 1
    for e, r in zip(expected, continue_one_epoch(resumed, data[0])):
        torch.testing.assert_close(r, e)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--sam_params=embeddings"], "sam_params: 'embeddings' is not one of all, dense, norm"),
        (["--sam_variant=sharpcf"], "sam_variant: 'sharpcf' is not one of sam, asam, looksam, helen, saf"),
        (["--helen_bound=-0.1"], "helen_bound: must be a number >= 0, got -0.1"),
        (["--saf_weight=abc"], "saf_weight: must be a number >= 0, got 'abc'"),
        (["--saf_lag=0"], "saf_lag: must be an integer >= 1, got 0"),
        (["--saf_lag=1.5"], "saf_lag: must be an integer >= 1, got 1.5"),
    ],
)
def test_each_bad_variant_value_is_one_error_line_and_exit_2(argv, expected, tiny_config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv + [f"--{key}={value}" for key, value in tiny_config.items()])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: {expected}"]
    assert not os.path.exists("saved") or os.listdir("saved") == []
