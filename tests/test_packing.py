"""Packed (padding-free) batches: the layout, the attention mask, and losses equal to the padded ones."""

import pytest
import torch
from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_sam.config import SAMConfig
from recbole_sam.data.dataset import create_dataset
from recbole_sam.model.packing import first_fit_rows, pack
from recbole_sam.registry import get_model


def test_first_fit_places_each_sequence_in_the_first_row_with_room():
    row, offset, rows = first_fit_rows(torch.tensor([3, 4, 1, 2, 4]).numpy(), width=5)
    # [3] -> row 0; [4] -> row 1; [1] -> row 0 (3+1); [2] -> row 2 (row 0 has 1 left, row 1 has 1); [4] -> row 3
    assert row.tolist() == [0, 1, 0, 2, 3]
    assert offset.tolist() == [0, 0, 3, 0, 0]
    assert rows == 4


def test_pack_lays_sequences_end_to_end_with_their_own_positions():
    item_seq = torch.tensor([[5, 6, 7], [8, 0, 0], [9, 4, 0]])
    lengths = torch.tensor([3, 1, 2])
    positions = torch.tensor([[0, 1, 2], [0, 1, 2], [0, 1, 2]])
    batch = pack(item_seq, lengths, positions, width=4)
    assert batch.items.tolist() == [[5, 6, 7, 8], [9, 4, 0, 0]]
    assert batch.positions.tolist() == [[0, 1, 2, 0], [0, 1, 0, 0]]
    assert batch.segments.tolist() == [[1, 1, 1, 2], [3, 3, 0, 0]]
    hidden = batch.items.unsqueeze(-1).float()  # a "hidden state" that is the item id
    assert batch.unpack(hidden).squeeze(-1).tolist() == [5, 6, 7, 8, 9, 4]  # item_seq[item_seq > 0]
    allowed = batch.attention_mask()[0, 0] == 0  # row 0: sequence 1 in slots 0-2, sequence 2 in slot 3
    assert allowed.tolist() == [
        [True, False, False, False],
        [True, True, False, False],
        [True, True, True, False],
        [False, False, False, True],
    ]


def build(tiny_config, model="SASRec", **options):
    config_dict = dict(tiny_config, train_scheme="sequence", MAX_ITEM_LIST_LENGTH=12, **options)
    config = SAMConfig(model, "ml-100k", config_dict=config_dict)
    init_seed(config["seed"], True)
    train, _, _ = data_preparation(config, create_dataset(config))
    init_seed(config["seed"], True)
    return get_model(model)(config, train._dataset).eval(), train


def mixed_batch(train):
    """A training batch whose lengths include 1 and the full window."""
    batch = next(iter(train))
    lengths = batch["item_length"]
    assert lengths.max() == 12
    batch["item_length"][0] = 1  # a sequence of length 1 (its other items become padding)
    batch["item_id_list"][0, 1:] = 0
    return batch


def copy_weights(source, target):
    target.load_state_dict(source.state_dict())


@pytest.mark.parametrize("loss_type", ["BCE", "CE", "BPR"])
def test_packed_loss_equals_padded_loss(loss_type, tiny_config):
    packed, train = build(tiny_config, loss_type=loss_type, pack_sequences=True)
    padded, _ = build(tiny_config, loss_type=loss_type, pack_sequences=False)
    copy_weights(packed, padded)
    batch = mixed_batch(train)
    with torch.no_grad():
        torch.manual_seed(3)
        loss_packed = packed.calculate_loss(batch)
        torch.manual_seed(3)  # the same negatives
        loss_padded = padded.calculate_loss(batch)
    torch.testing.assert_close(loss_packed, loss_padded, rtol=1e-5, atol=1e-6)


def test_packed_cl4srec_next_item_loss_equals_padded(tiny_config):
    packed, train = build(tiny_config, model="CL4SRec", pack_sequences=True)
    padded, _ = build(tiny_config, model="CL4SRec", pack_sequences=False)
    copy_weights(packed, padded)
    batch = mixed_batch(train)
    with torch.no_grad():
        torch.manual_seed(3)
        loss_packed = packed.next_item_loss(batch)
        torch.manual_seed(3)
        loss_padded = padded.next_item_loss(batch)
    torch.testing.assert_close(loss_packed, loss_padded, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("options", [{}, {"padding_side": "left"}, {"position_from_prediction": True}])
def test_packed_forward_equals_padded_forward(options, tiny_config):
    packed, train = build(tiny_config, pack_sequences=True, **options)
    padded, _ = build(tiny_config, pack_sequences=False, **options)
    copy_weights(packed, padded)
    batch = mixed_batch(train)
    with torch.no_grad():
        a = packed.forward(batch["item_id_list"], batch["item_length"])
        b = padded.forward(batch["item_id_list"], batch["item_length"])
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_no_attention_crosses_a_sequence_boundary(tiny_config):
    model, train = build(tiny_config, pack_sequences=True)
    batch = mixed_batch(train)
    item_seq, lengths = batch["item_id_list"].clone(), batch["item_length"]
    with torch.no_grad():
        before = model.encode_packed(item_seq, lengths)
        changed = item_seq.clone()
        changed[1, : lengths[1]] = torch.randint(1, model.n_items, (int(lengths[1]),))  # sequence 1 only
        after = model.encode_packed(changed, lengths)
    owner = torch.arange(len(item_seq)).unsqueeze(1).expand_as(item_seq)[item_seq > 0]
    assert torch.equal(before[owner != 1], after[owner != 1])
    assert not torch.allclose(before[owner == 1], after[owner == 1])
