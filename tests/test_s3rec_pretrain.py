"""S3Rec's vectorised pre-training inputs (s3rec_pretrain.py): the same tensors and losses as
RecBole's per-sequence loop when both get the same draws, and one draw per batch for SAM."""

import pytest
import torch
from recbole.data import data_preparation
from recbole.model.sequential_recommender import s3rec as recbole_s3rec
from recbole.utils import init_seed

from recbole_sam.config import SAMConfig
from recbole_sam.data.dataset import create_dataset
from recbole_sam.model.s3rec import S3Rec
from recbole_sam.model.s3rec_pretrain import encode_packed, left_align, pretrain_loss
from recbole_sam.rng import DataDraws


class ScriptedRandom:
    """Python's ``random`` as RecBole's S3Rec calls it, answering from a list of values."""

    def __init__(self, values):
        self.values = list(values)

    def random(self):
        return self.values.pop(0)

    def randint(self, low, high):
        value = self.values.pop(0)
        assert low <= value <= high, (low, value, high)  # our draw is one RecBole could make
        return value


def recbole_calls(sequence, draws):
    """The values RecBole's loop draws, in its order, that make its choices ``draws``' choices."""
    values, lengths = [], (sequence > 0).sum(1).tolist()
    width = sequence.size(1)
    for row, length in enumerate(lengths):
        for col in range(width - length, width):
            masked = bool(draws.masked[row, col])
            values.append(0.0 if masked else 0.999)
            if masked:
                values.append(int(draws.negatives[row, col]))  # not in the sequence: accepted at once
    for row, length in enumerate(lengths):
        if length >= 2:
            values += [int(draws.segment_length[row]), int(draws.segment_start[row]), int(draws.negative_start[row])]
    return values


@pytest.fixture
def pretraining(tiny_config):
    config = SAMConfig("S3Rec", "ml-100k", config_dict=dict(tiny_config, train_stage="pretrain", mask_ratio=0.3))
    init_seed(config["seed"], True)
    train_data = data_preparation(config, create_dataset(config))[0]
    model = S3Rec(config, train_data._dataset)
    model.eval()  # no dropout: the two losses must be equal, not equal in distribution
    return model, next(iter(train_data))


def test_same_draws_give_recboles_inputs_and_losses(pretraining, monkeypatch):
    model, batch = pretraining
    item_seq, item_seq_len = batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]
    torch.manual_seed(11)
    model.data_draws = DataDraws()  # keep our draw, to hand it to RecBole
    inputs = model.pretrain_inputs(item_seq, item_seq_len)
    ours = (model.attributes[inputs[1]],) + inputs
    draws = model.data_draws.kept[0]
    del model.data_draws
    assert draws.masked.any() and (item_seq_len >= 2).any()
    monkeypatch.setattr(recbole_s3rec, "random", ScriptedRandom(recbole_calls(left_align(item_seq, item_seq_len), draws)))
    theirs = model.reconstruct_pretrain_data(item_seq, item_seq_len)
    assert recbole_s3rec.random.values == []  # RecBole consumed exactly our draws
    for mine, recboles in zip(ours, theirs):
        assert torch.equal(mine.long(), recboles.long())
    assert torch.allclose(model.pretrain(*ours), model.pretrain(*theirs), rtol=1e-6)


def test_negatives_avoid_the_sequence_and_segments_stay_inside(pretraining):
    model, batch = pretraining
    sequence = left_align(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
    torch.manual_seed(3)
    masked_items, _, negatives, masked_segment, positive, negative = model.pretrain_inputs(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
    hits = (negatives.unsqueeze(-1) == sequence.unsqueeze(1)).any(-1) & (masked_items == model.mask_token)
    assert not hits.any()
    lengths = (sequence > 0).sum(1)
    segment = (masked_segment == model.mask_token).sum(1)
    long_rows = lengths >= 2
    assert ((segment[long_rows] >= 1) & (segment[long_rows] <= lengths[long_rows] // 2)).all()
    # Outside the segment, positive and negative segments hold the mask token; inside, items.
    assert torch.equal(positive == model.mask_token, negative == model.mask_token)


def test_both_sam_passes_see_the_same_masks(pretraining):
    model, batch = pretraining
    model.data_draws = DataDraws()
    first = model.pretrain_inputs(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
    model.data_draws.replay()
    second = model.pretrain_inputs(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
    del model.data_draws
    third = model.pretrain_inputs(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not torch.equal(first[0], third[0])  # a new batch draw masks other items


def test_packed_loss_equals_recboles_pretrain_on_the_same_inputs(pretraining):
    model, batch = pretraining
    torch.manual_seed(4)
    inputs = model.pretrain_inputs(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
    packed = pretrain_loss(model, model.attributes, inputs)
    assert torch.allclose(packed, model.pretrain(model.attributes[inputs[1]], *inputs), rtol=1e-5)
    # calculate_loss takes that path, from one draw of its own
    torch.manual_seed(4)
    assert torch.allclose(model.calculate_loss(batch), packed, rtol=1e-5)


def test_perturbing_one_sequence_leaves_the_others_hidden_states(pretraining):
    model, batch = pretraining
    sequences = left_align(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])[:6]
    changed = sequences.clone()
    changed[0, -1] = 1 if int(changed[0, -1]) != 1 else 2
    wanted = sequences > 0
    with torch.no_grad():
        before, after = encode_packed(model, sequences, wanted), encode_packed(model, changed, wanted)
    first = int(wanted[0].sum())
    assert not torch.allclose(before[:first], after[:first])
    assert torch.allclose(before[first:], after[first:], atol=1e-6)


def test_bad_fast_path_value_is_refused(tiny_config):
    from recbole_sam.errors import ConfigError

    with pytest.raises(ConfigError, match=r"s3rec_fast_path: must be True or False, got 'yes'"):
        SAMConfig("S3Rec", "ml-100k", config_dict=dict(tiny_config, s3rec_fast_path="yes"))


def test_mask_last_masks_every_samples_most_recent_item(tiny_config):
    config = SAMConfig("S3Rec", "ml-100k", config_dict=dict(tiny_config, train_stage="pretrain", s3rec_mask_last=True))
    init_seed(config["seed"], True)
    train_data = data_preparation(config, create_dataset(config))[0]
    model = S3Rec(config, train_data._dataset)
    batch = next(iter(train_data))
    masked_items, positives, negatives = model.pretrain_inputs(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])[:3]
    assert (masked_items[:, -1] == model.mask_token).all()
    assert not (negatives[:, -1:] == positives).any()  # and the negative is not in the sample
    others = masked_items[:, :-1][positives[:, :-1] > 0]
    assert 0 < (others == model.mask_token).float().mean() < 0.5  # the rest still with mask_ratio 0.2


def test_mask_last_needs_the_fast_path(tiny_config):
    from recbole_sam.errors import ConfigError

    with pytest.raises(ConfigError, match=r"s3rec_mask_last: True needs s3rec_fast_path: True"):
        SAMConfig("S3Rec", "ml-100k", config_dict=dict(tiny_config, s3rec_mask_last=True, s3rec_fast_path=False))


def test_negative_segments_are_cut_from_the_pool_the_reference_uses():
    from recbole_sam.model.s3rec_pretrain import PretrainDraws, build_inputs

    sequence = torch.tensor([[0, 0, 3, 4, 5, 6]])
    draws = PretrainDraws(
        masked=torch.zeros_like(sequence, dtype=torch.bool), negatives=torch.zeros_like(sequence),
        segment_length=torch.tensor([2]), segment_start=torch.tensor([1]), negative_start=torch.tensor([4]),
    )  # fmt: skip
    M, pool = 99, torch.tensor([10, 11, 12, 13, 14, 15, 16])
    *_, masked_segment, positive, negative = build_inputs(sequence, draws, M, pool)
    assert masked_segment.tolist() == [[0, 0, 3, M, M, 6]] and positive.tolist() == [[0, 0, M, 4, 5, M]]
    assert negative.tolist() == [[0, 0, M, 14, 15, M]]  # pool[4:6], where the positive segment sits
    draws.negative_start = torch.tensor([1])  # no pool: the batch's items end to end (3 4 5 6), RecBole's
    assert build_inputs(sequence, draws, M)[-1].tolist() == [[0, 0, M, 4, 5, M]]


def test_all_users_negative_segments_come_from_every_users_whole_sequence(tiny_config):
    config = SAMConfig("S3Rec", "ml-100k", config_dict=dict(tiny_config, train_stage="pretrain", s3rec_negative_segments="all_users"))
    init_seed(config["seed"], True)
    dataset = create_dataset(config)
    train_data = data_preparation(config, dataset)[0]
    model = S3Rec(config, train_data._dataset)
    pool = model.segment_pool
    # Every interaction, train, valid and test: RecBole's rows are each user's items after the first.
    users = dataset.inter_feat[dataset.uid_field].unique()
    assert len(pool) == len(dataset.inter_feat) + len(users)
    batch = next(iter(train_data))
    sequence = left_align(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
    # Negative segments come from that pool, not from the batch: a pool of one item outside the batch.
    outsider = int(torch.nonzero(torch.bincount(sequence.flatten(), minlength=model.n_items)[1:] == 0)[0]) + 1
    model.segment_pool = torch.full((len(pool),), outsider)
    _, _, _, masked_segment, positive, negative = model.pretrain_inputs(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
    inside = (masked_segment == model.mask_token) & (sequence > 0)
    assert inside.any() and (negative[inside] == outsider).all()
    assert torch.equal(positive[inside], sequence[inside])


def test_negative_segment_pool_is_checked(tiny_config):
    from recbole_sam.errors import ConfigError

    with pytest.raises(ConfigError, match=r"s3rec_negative_segments: 'users' is not one of batch, all_users"):
        SAMConfig("S3Rec", "ml-100k", config_dict=dict(tiny_config, s3rec_negative_segments="users"))
    with pytest.raises(ConfigError, match=r"s3rec_negative_segments: all_users needs s3rec_fast_path: True"):
        SAMConfig("S3Rec", "ml-100k", config_dict=dict(tiny_config, s3rec_negative_segments="all_users", s3rec_fast_path=False))


def test_reference_samples_are_every_prefix_of_the_last_window_of_the_training_part():
    from types import SimpleNamespace

    import numpy as np

    from recbole_sam.data.dataset import window_prefixes

    # User 0: items 1..7, the valid target 6 has 5 items before it; user 1: 8..11, valid target 10;
    # user 2: no rows. Window 3: user 0 keeps its last 3 training items, 3 4 5.
    sequences = SimpleNamespace(
        items=np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), indptr=np.array([0, 7, 11, 11]),
        cutoff=[torch.tensor([4, 1, -1]), torch.tensor([5, 2, -1]), torch.tensor([6, 3, -1])],
    )  # fmt: skip
    users, lists, lengths = window_prefixes(sequences, 3)
    assert users.tolist() == [0, 0, 0, 1, 1] and lengths.tolist() == [1, 2, 3, 1, 2]
    assert lists.tolist() == [[3, 0, 0], [3, 4, 0], [3, 4, 5], [8, 0, 0], [8, 9, 0]]


def test_reference_samples_replace_recboles_prefixes_in_pre_training(tiny_config):
    def training_rows(samples):
        config = SAMConfig("S3Rec", "ml-100k", config_dict=dict(tiny_config, train_stage="pretrain", s3rec_pretrain_samples=samples))
        init_seed(config["seed"], True)
        dataset = data_preparation(config, create_dataset(config))[0]._dataset
        return dataset, dataset.inter_feat

    dataset, reference = training_rows("reference")
    recbole = training_rows("recbole")[1]
    window, lists = dataset.config["MAX_ITEM_LIST_LENGTH"], dataset.item_id_list_field
    sequences = dataset.user_sequences
    for user in torch.unique(recbole[dataset.uid_field])[:30].tolist():
        part = int(sequences.cutoff[1][user])  # training items before the valid target
        whole = torch.as_tensor(sequences.items[sequences.indptr[user] : sequences.indptr[user] + part])
        mine = reference[lists][reference[dataset.uid_field] == user]
        assert len(mine) == min(part, window)
        if part <= window:  # RecBole's prefixes, and the whole training part too
            assert len(mine) == (recbole[dataset.uid_field] == user).sum() + 1
        assert torch.equal(mine[-1][: min(part, window)], whole[-window:])  # the last sample: the whole cut
        assert (mine[:, 0] == whole[-window:][0]).all()  # every sample starts where the cut starts
        lengths = reference[dataset.item_list_length_field][reference[dataset.uid_field] == user]
        items = reference[dataset.iid_field][reference[dataset.uid_field] == user]
        assert torch.equal(items, mine[torch.arange(len(mine)), lengths - 1])  # the item field: each sample's last item


def test_pretrain_samples_value_is_checked(tiny_config):
    from recbole_sam.errors import ConfigError

    with pytest.raises(ConfigError, match=r"s3rec_pretrain_samples: 'all' is not one of recbole, reference"):
        SAMConfig("S3Rec", "ml-100k", config_dict=dict(tiny_config, s3rec_pretrain_samples="all"))
