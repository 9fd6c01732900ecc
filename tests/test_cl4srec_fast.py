"""CL4SRec's fast path: one packed pass for the next-item loss and both views, equal to the
padded implementation; SAM's passes see the same views; training, resume and records work."""

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from recbole.data import data_preparation
from recbole.data.interaction import Interaction
from recbole.utils import init_seed

from recbole_sam.checkpoint import SafeCheckpointMixin
from recbole_sam.config import SAMConfig
from recbole_sam.data.dataset import create_dataset
from recbole_sam.errors import Interrupted
from recbole_sam.model import cl4srec
from recbole_sam.model.cl4srec import CL4SRec, UniformDropout
from recbole_sam.model.packing import first_fit_rows
from recbole_sam.quick_start import run_recbole_sam
from recbole_sam.rng import RandomDraws
from recbole_sam.trainer import SAMTrainer


def build(tiny_config, **options):
    config = SAMConfig("CL4SRec", "ml-100k", config_dict=dict(tiny_config, MAX_ITEM_LIST_LENGTH=12, **options))
    init_seed(config["seed"], True)
    train, _, _ = data_preparation(config, create_dataset(config))
    init_seed(config["seed"], True)
    model = CL4SRec(config, train._dataset)
    model.test_config = config  # for a trainer
    return model, train


def mixed_batch(train):
    """A training batch whose lengths include 1 and the full window."""
    batch = next(iter(train))
    assert batch["item_length"].max() == 12
    batch["item_length"][0] = 1
    batch["item_id_list"][0, 1:] = 0
    return batch


SETTINGS = [
    dict(loss_type="CE", train_scheme="prefix"),
    dict(loss_type="BPR", train_scheme="prefix"),
    dict(loss_type="CE", train_scheme="sequence"),
    dict(loss_type="BCE", train_scheme="sequence", neg_exclude="user", padding_side="left"),
]


@pytest.mark.parametrize("cl_weight", [0.0, 0.1])
@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: " ".join(map(str, s.values())))
def test_one_packed_pass_equals_the_padded_losses(setting, cl_weight, tiny_config):
    """cl_weight 0: the next-item loss alone; 0.1: plus the contrastive loss, so both are checked."""
    fast, train = build(tiny_config, cl_weight=cl_weight, **setting)
    padded, _ = build(tiny_config, cl_weight=cl_weight, pack_sequences=False, **setting)
    assert fast.fast_path and not padded.fast_path
    padded.load_state_dict(fast.state_dict())
    fast.eval(), padded.eval()
    batch = mixed_batch(train)
    with torch.no_grad():
        draws = RandomDraws()
        loss_fast = fast.calculate_loss(batch)
        draws.restore()  # the same negatives and views
        loss_padded = padded.calculate_loss(batch)
    torch.testing.assert_close(loss_fast, loss_padded, rtol=1e-5, atol=1e-6)


def test_encode_packed_at_gives_every_or_last_hidden_state_and_no_sequence_sees_another(tiny_config):
    model, train = build(tiny_config, n_layers=2)
    model.eval()
    batch = mixed_batch(train)
    item_seq, lengths = batch["item_id_list"], batch["item_length"]
    last_only = torch.arange(len(item_seq)) % 2 == 1
    with torch.no_grad():
        padded = model.encode(item_seq, lengths)  # [B L H]
        got = model.encode_packed_at(item_seq, lengths, last_only)
        steps = torch.arange(item_seq.size(1)).unsqueeze(0)
        wanted = (steps < lengths.unsqueeze(1)) & (~last_only.unsqueeze(1) | (steps == lengths.unsqueeze(1) - 1))
        torch.testing.assert_close(got, padded[wanted], rtol=1e-5, atol=1e-5)

        changed = item_seq.clone()
        changed[2, : lengths[2]] = torch.randint(1, model.n_items, (int(lengths[2]),))  # sequence 2 only
        after = model.encode_packed_at(changed, lengths, last_only)
    owner = torch.arange(len(item_seq)).unsqueeze(1).expand_as(item_seq)[wanted]
    assert torch.equal(got[owner != 2], after[owner != 2])
    assert not torch.allclose(got[owner == 2], after[owner == 2])


def test_sequence_scheme_loss_has_a_target_at_every_position(tiny_config):
    """Hand-made batch: [a b c] then target d, and [e] then target f: the CE targets are b, c, d and f."""
    model, _ = build(tiny_config, loss_type="CE", train_scheme="sequence", cl_weight=0.0)
    model.eval()
    a, b, c, d, e, f = 5, 9, 2, 7, 11, 3
    batch = Interaction(
        {
            "user_id": torch.tensor([1, 2]),
            "item_id_list": torch.tensor([[a, b, c, 0], [e, 0, 0, 0]]),
            "item_length": torch.tensor([3, 1]),
            "item_id": torch.tensor([d, f]),
        }
    )
    with torch.no_grad():
        hidden = model.encode(batch["item_id_list"], batch["item_length"])  # padded reference
        inputs = torch.stack([hidden[0, 0], hidden[0, 1], hidden[0, 2], hidden[1, 0]])
        scores = inputs @ model.item_embedding.weight[: model.n_items].T
        expected = F.cross_entropy(scores, torch.tensor([b, c, d, f]))
        torch.testing.assert_close(model.calculate_loss(batch), expected, rtol=1e-5, atol=1e-6)


def test_uniform_dropout_keeps_one_minus_p_and_rescales():
    dropout = UniformDropout(0.3)
    x = torch.ones(200_000)
    y = dropout(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.01
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7))
    assert torch.equal(dropout.eval()(x), x)


def test_fast_path_uses_uniform_dropout_everywhere(tiny_config):
    model, _ = build(tiny_config)
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert dropouts and all(type(m) is UniformDropout for m in dropouts)


@pytest.mark.parametrize("mode", ["replay", "fresh_dropout"])
def test_both_sam_passes_see_the_same_views_and_negatives(mode, tiny_config, monkeypatch):
    model, train = build(tiny_config, loss_type="BCE", train_scheme="sequence", sam_second_pass_draws=mode)
    views, negatives, dropped = [], [], []
    augment = cl4srec.augment_pair
    monkeypatch.setattr(cl4srec, "augment_pair", lambda *args: views.append(augment(*args)) or views[-1])
    sample = model.sample_negatives
    model.sample_negatives = lambda *args: negatives.append(sample(*args)) or negatives[-1]
    model.dropout.register_forward_hook(lambda module, inputs, output: dropped.append((output == 0) & (inputs[0] != 0)))
    model.train()
    SAMTrainer(model.test_config, model)._sam_loss(model.calculate_loss)(next(iter(train)))
    assert len(dropped) == 2
    if mode == "replay":  # both passes draw again from the restored generators: the same draws
        assert len(views) == 2 and all(torch.equal(x, y) for x, y in zip(views[0], views[1]))
        assert len(negatives) == 2 and torch.equal(*negatives)
        assert torch.equal(*dropped)
    else:  # drawn once and kept; dropout drawn afresh
        assert len(views) == 1 and len(negatives) == 1
        assert not torch.equal(*dropped)


def interrupt_after_epoch(monkeypatch, stop_epoch):
    save = SafeCheckpointMixin.save_last_checkpoint

    def save_then_stop(self, epoch):
        save(self, epoch)
        if epoch == stop_epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(SafeCheckpointMixin, "save_last_checkpoint", save_then_stop)


def test_training_goes_through_the_trainers_and_resumes(tiny_config, monkeypatch):
    settings = dict(tiny_config, epochs=2, stopping_step=10, trainer="sam", train_scheme="sequence", loss_type="BCE")
    uninterrupted = run_recbole_sam("CL4SRec", "ml-100k", config_dict=dict(settings))
    with monkeypatch.context() as patch:
        interrupt_after_epoch(patch, stop_epoch=0)
        with pytest.raises(Interrupted) as stopped:
            run_recbole_sam("CL4SRec", "ml-100k", config_dict=dict(settings))
    last = str(stopped.value).split("--resume_from=")[1]
    resumed = run_recbole_sam(resume_from=last)
    assert resumed["test_result"] == uninterrupted["test_result"]
    assert resumed["history"] == uninterrupted["history"]
    assert [entry["epoch"] for entry in resumed["history"]["curve"]] == [0, 1]
    assert os.path.isfile(resumed["result_file"])


def test_paper_overlay_gives_the_iclrec_instance_cl_setting(tiny_config):
    paper = Path(__file__).resolve().parent.parent / "properties" / "paper"
    files = [str(paper / "ml-100k.yaml"), str(paper / "CL4SRec.yaml")]
    settings = {key: value for key, value in tiny_config.items() if key not in ("epochs", "stopping_step", "train_batch_size")}
    config = SAMConfig("CL4SRec", "ml-100k", config_file_list=files, config_dict=settings)
    assert (config["train_scheme"], config["loss_type"], config["neg_exclude"], config["padding_side"]) == (
        "sequence", "BCE", "user", "left",
    )  # from the dataset's paper file
    assert (config["crop_eta"], config["mask_gamma"], config["reorder_beta"]) == (0.2, 0.7, 0.2)
    assert (config["cl_weight"], config["cl_temperature"], config["epochs"], config["stopping_step"]) == (0.1, 1.0, 300, 39)
    assert config["train_batch_size"] == 256 and config["cl_fast_path"] is True


def test_first_fit_rows_places_each_sequence_in_the_first_row_with_room_on_random_batches():
    """Against a direct transcription of first fit (scan every row for each sequence)."""
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        width = int(torch.randint(1, 20, (1,), generator=generator))
        lengths = torch.randint(1, width + 1, (int(torch.randint(1, 60, (1,), generator=generator)),), generator=generator)
        fill, expected = [], []
        for length in lengths.tolist():
            r = next((i for i, used in enumerate(fill) if used + length <= width), len(fill))
            fill += [0] * (r == len(fill))
            expected.append((r, fill[r]))
            fill[r] += length
        row, offset, n_rows = first_fit_rows(lengths.numpy(), width)
        assert list(zip(row.tolist(), offset.tolist())) == expected and n_rows == len(fill)
