"""The SAM trainer inside RecBole's training loop, on a small slice of ml-100k."""

import os

import pytest
import torch
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed

from recbole_sam.config import SAMConfig
from recbole_sam.optim import SAM
from recbole_sam.registry import get_model
from recbole_sam.trainer import PlainTrainer, SAMTrainer


def build(config_dict, trainer_class=SAMTrainer):
    """Config, fresh data and a fresh trainer, seeded the way run_recbole_sam seeds them.

    Each call makes its own dataloaders: RecBole's shuffle draws from a generator that each
    loader seeds once, so two trainers compared batch for batch need loaders of their own.
    """
    # RecBole's own pipeline (one sample per prefix, negatives from its sampler): many batches.
    config = SAMConfig("SASRec", "ml-100k", config_dict=dict({"train_scheme": "prefix"}, **config_dict))
    init_seed(config["seed"], config["reproducibility"])
    data = data_preparation(config, create_dataset(config))
    init_seed(config["seed"], config["reproducibility"])
    model = get_model("SASRec")(config, data[0]._dataset).to(config["device"])
    return trainer_class(config, model), data


def record_losses(trainer):
    """Every value model.calculate_loss returns, in order."""
    values, original = [], trainer.model.calculate_loss

    def calculate_loss(interaction):
        loss = original(interaction)
        values.append(loss.item())
        return loss

    trainer.model.calculate_loss = calculate_loss
    return values


def parameters(model):
    return [p.detach().clone() for p in model.parameters()]


def test_rho_to_zero_reproduces_the_plain_trainer_step_for_step(tiny_config):
    config = dict(tiny_config, epochs=2)
    plain, plain_data = build(config, PlainTrainer)
    sam, sam_data = build(dict(config, rho=1e-12), SAMTrainer)
    plain_losses, sam_losses = record_losses(plain), record_losses(sam)
    init_seed(1, True)
    plain.fit(plain_data[0], saved=False)
    init_seed(1, True)
    sam.fit(sam_data[0], saved=False)

    first_pass, second_pass = sam_losses[0::2], sam_losses[1::2]
    assert len(first_pass) == len(plain_losses) > 2
    # Both SAM passes see the same dropout masks and negatives ...
    assert first_pass == pytest.approx(second_pass, rel=1e-6, abs=1e-7)
    # ... and, with a vanishing ascent, SAM takes the plain trainer's steps.
    assert first_pass == pytest.approx(plain_losses, rel=1e-5, abs=1e-6)
    for p, s in zip(parameters(plain.model), parameters(sam.model)):
        torch.testing.assert_close(p, s, rtol=1e-4, atol=1e-5)


def test_sam_changes_the_trajectory_and_logs_sharpness(tiny_config):
    plain, plain_data = build(tiny_config, PlainTrainer)
    sam, data = build(dict(tiny_config, rho=0.5), SAMTrainer)
    init_seed(1, True)
    plain.fit(plain_data[0], saved=False)
    init_seed(1, True)
    sam.fit(data[0], saved=False)
    assert isinstance(sam.optimizer, SAM)
    assert any(not torch.allclose(p, s) for p, s in zip(parameters(plain.model), parameters(sam.model)))
    batches = len(data[0])
    for epoch in range(tiny_config["epochs"]):
        stats = sam.sam_history[epoch]
        assert stats["ascents"] == batches
        assert stats["ascent_norm"] == pytest.approx(0.5, rel=1e-4)
        assert stats["sharpness"] > 0  # an ascent step raises the training loss


def test_periodic_ascent_every_k_steps(tiny_config):
    sam, data = build(dict(tiny_config, epochs=1, sam_interval=3, sam_variant="looksam"))
    calls = record_losses(sam)
    sam.fit(data[0], saved=False)
    batches = len(data[0])
    ascents = -(-batches // 3)
    assert sam.sam_history[0]["ascents"] == ascents
    assert len(calls) == batches + ascents  # one extra forward pass per ascent only


def test_trainer_reaches_metrics_and_reloads_its_best_checkpoint(tiny_config):
    sam, (train, valid, test) = build(dict(tiny_config, epochs=3, loss_type="CE"))
    best_score, best_result = sam.fit(train, valid, saved=True)
    assert set(best_result) == {"hit@10", "ndcg@10"}
    assert os.path.isfile(sam.saved_model_file)
    result = sam.evaluate(test, load_best_model=True)  # torch >= 2.6 reload of RecBole's checkpoint
    random_hit = 10 / train._dataset.item_num
    assert result["hit@10"] > 2 * random_hit
    assert [name for name in os.listdir("saved") if "partial" in name] == []


def test_resume_continues_the_same_trajectory(tiny_config):
    config = dict(tiny_config, epochs=1)
    original, data = build(config)
    original.fit(data[0], saved=True)  # epoch 0, checkpoint written
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

    fresh_optimizer, data = build(config)
    fresh_optimizer.model.load_state_dict(torch.load(checkpoint, weights_only=False)["state_dict"])
    fresh_optimizer.start_epoch = 1
    moved = continue_one_epoch(fresh_optimizer, data[0])
    assert any(not torch.allclose(e, m) for e, m in zip(expected, moved))  # the Adam moments matter


def test_checkpoint_names_do_not_collide_within_a_second(tiny_config):
    first, second = build(tiny_config)[0], build(tiny_config)[0]
    assert first.saved_model_file != second.saved_model_file


def test_an_interrupted_save_leaves_no_file_behind(tiny_config, monkeypatch):
    trainer, _ = build(tiny_config)

    def crash(obj, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        trainer._save_checkpoint(0)
    assert os.listdir(trainer.checkpoint_dir) == []


def test_gradient_clipping_applies_to_the_second_pass(tiny_config):
    # With a tiny max_norm the update that reaches the weights is tiny, while the ascent still
    # has its full radius: the first pass's gradient was not clipped.
    config = dict(tiny_config, epochs=1, learner="sgd", learning_rate=1.0, clip_grad_norm={"max_norm": 1e-6}, rho=0.3)
    trainer, data = build(config)
    before = parameters(trainer.model)
    trainer.fit(data[0], saved=False)
    moved = torch.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(before, parameters(trainer.model))))
    assert moved.item() <= len(data[0]) * 1e-6 * 1.01
    assert trainer.sam_history[0]["ascent_norm"] == pytest.approx(0.3, rel=1e-4)
