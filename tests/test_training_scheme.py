"""The paper's training scheme (one sequence per user, loss at every position) and train_fraction."""

import pytest
import torch
from recbole.data import data_preparation
from recbole.model.sequential_recommender.sasrec import SASRec as RecBoleSASRec
from recbole.utils import init_seed

from recbole_sam.config import SAMConfig
from recbole_sam.data.dataset import create_dataset, last_row_per_user
from recbole_sam.errors import ConfigError
from recbole_sam.model.sasrec import SASRec, next_items


def prepare(config_dict):
    config = SAMConfig("SASRec", "ml-100k", config_dict=config_dict)
    init_seed(config["seed"], True)
    return config, data_preparation(config, create_dataset(config))


def split_frames(data):
    """train, valid, test interaction tables of the built datasets."""
    return [loader._dataset.inter_feat for loader in data]


def assert_same_interactions(a, b):
    assert len(a) == len(b)
    for field in a.columns:
        assert torch.equal(a[field], b[field]), field


def test_next_items_shifts_and_appends_the_target():
    item_seq = torch.tensor([[5, 6, 7, 0], [9, 0, 0, 0]])
    targets = next_items(item_seq, torch.tensor([3, 1]), torch.tensor([8, 4]))
    assert targets.tolist() == [[6, 7, 8, 0], [4, 0, 0, 0]]


def test_last_row_per_user():
    assert last_row_per_user(torch.tensor([1, 1, 1, 2, 3, 3]).numpy()).tolist() == [2, 3, 5]


def test_sequence_scheme_keeps_each_users_whole_training_sequence(tiny_config):
    _, prefix = prepare(dict(tiny_config, train_scheme="prefix"))
    _, sequence = prepare(dict(tiny_config, train_scheme="sequence"))
    prefix_train, prefix_valid, prefix_test = split_frames(prefix)
    train, valid, test = split_frames(sequence)
    users = prefix_train["user_id"]
    assert sorted(train["user_id"].tolist()) == sorted(set(users.tolist()))
    for row in range(len(train)):
        user = train["user_id"][row]
        assert train["item_length"][row] == prefix_train["item_length"][users == user].max()
    assert_same_interactions(valid, prefix_valid)
    assert_same_interactions(test, prefix_test)


def test_train_fraction_keeps_a_seeded_subset_and_leaves_valid_and_test_alone(tiny_config):
    _, full = prepare(tiny_config)
    _, part = prepare(dict(tiny_config, train_fraction=0.6))
    _, again = prepare(dict(tiny_config, train_fraction=0.6))
    _, other_seed = prepare(dict(tiny_config, train_fraction=0.6, seed=8))
    full_train, full_valid, full_test = split_frames(full)
    train, valid, test = split_frames(part)
    assert len(train) == round(0.6 * len(full_train))
    assert_same_interactions(train, split_frames(again)[0])
    assert not torch.equal(train["item_id"], split_frames(other_seed)[0]["item_id"])
    assert_same_interactions(valid, full_valid)
    assert_same_interactions(test, full_test)
    # every kept row is one of the full training rows
    full_rows = set(zip(full_train["user_id"].tolist(), full_train["item_length"].tolist()))
    assert set(zip(train["user_id"].tolist(), train["item_length"].tolist())) <= full_rows


@pytest.mark.parametrize("scheme", ["sequence", "prefix"])
def test_train_fraction_first_users_keeps_whole_sequences_of_the_first_users(scheme, tiny_config):
    """ICLRec's --training_data_ratio: the first int(f * users) users' training data, whole;
    valid and test untouched."""
    _, full = prepare(dict(tiny_config, train_scheme=scheme))
    _, part = prepare(dict(tiny_config, train_scheme=scheme, train_fraction=0.6, train_fraction_by="first_users"))
    full_train, part_train = split_frames(full)[0], split_frames(part)[0]
    users = torch.unique(full_train["user_id"])
    kept = users[: int(0.6 * len(users))]  # RecBole's user ids follow the file's order
    assert torch.equal(torch.unique(part_train["user_id"]), kept)
    assert_same_interactions(part_train, full_train[torch.isin(full_train["user_id"], kept)])
    for full_split, part_split in zip(split_frames(full)[1:], split_frames(part)[1:]):
        assert_same_interactions(full_split, part_split)


def test_trimmed_padding_gives_recboles_forward(tiny_config):
    config, data = prepare(dict(tiny_config, train_scheme="prefix"))
    init_seed(1, True)
    model = SASRec(config, data[0]._dataset).eval()
    train = data[0]._dataset.inter_feat
    batch = train[torch.nonzero(train["item_length"] <= 12)[:16, 0]]  # short prefixes, padded to 20
    item_seq, item_seq_len = batch["item_id_list"], batch["item_length"]
    assert item_seq_len.max() < item_seq.shape[1]  # so there are padding columns to cut
    ours = model.forward(item_seq, item_seq_len)
    recboles = RecBoleSASRec.forward(model, item_seq, item_seq_len)
    torch.testing.assert_close(ours, recboles, rtol=1e-5, atol=1e-6)


def test_loss_at_every_position_equals_the_loss_over_all_prefixes(tiny_config):
    # With causal attention and positions counted from the left, the hidden state at position t
    # of a whole sequence is the last hidden state of its prefix of length t + 1: the sequence
    # scheme computes RecBole's prefix losses, in one pass.
    config, data = prepare(dict(tiny_config, loss_type="CE", train_scheme="sequence"))
    init_seed(1, True)
    model = SASRec(config, data[0]._dataset).eval()
    sample = data[0]._dataset.inter_feat[[0]]
    item_seq, length = sample["item_id_list"], int(sample["item_length"][0])
    with torch.no_grad():
        sequence_loss = model.calculate_loss(sample)
        targets = next_items(item_seq, sample["item_length"], sample["item_id"])[0]
        prefix_losses = []
        for t in range(length):
            hidden = model.forward(item_seq, torch.tensor([t + 1]))
            logits = hidden @ model.item_embedding.weight.T
            prefix_losses.append(torch.nn.functional.cross_entropy(logits, targets[t : t + 1]))
    torch.testing.assert_close(sequence_loss, torch.stack(prefix_losses).mean(), rtol=1e-5, atol=1e-6)


def test_sampled_negatives_avoid_the_users_items(tiny_config):
    config, data = prepare(dict(tiny_config, train_scheme="sequence"))
    model = SASRec(config, data[0]._dataset)
    item_seq = data[0]._dataset.inter_feat["item_id_list"][:32]
    position = item_seq > 0
    negatives = model.sample_negatives(item_seq, data[0]._dataset.inter_feat["user_id"][:32])[position]
    rows = torch.nonzero(position)[:, 0]
    clashes = sum(int(neg in item_seq[row]) for neg, row in zip(negatives.tolist(), rows.tolist()))
    assert negatives.min() >= 1 and negatives.max() < model.n_items
    assert clashes <= 0.01 * len(negatives)


@pytest.mark.parametrize("loss_type", ["CE", "BPR", "BCE"])
def test_sequence_scheme_trains_every_loss(loss_type, tiny_config):
    from recbole_sam.quick_start import run_recbole_sam

    result = run_recbole_sam(
        "SASRec", "ml-100k", config_dict=dict(tiny_config, epochs=1, loss_type=loss_type, train_scheme="sequence")
    )
    assert set(result["test_result"]) == {"hit@10", "ndcg@10"}


@pytest.mark.parametrize(
    "override, message",
    [
        ({"train_scheme": "window"}, "train_scheme: 'window' is not one of prefix, sequence"),
        ({"train_fraction": 0}, "train_fraction: must be a number in (0, 1], got 0"),
        ({"train_fraction": 1.5}, "train_fraction: must be a number in (0, 1], got 1.5"),
        ({"train_fraction_by": "users"}, "train_fraction_by: 'users' is not one of random_rows, first_users"),
    ],
)
def test_bad_training_options(override, message, tiny_config):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        SAMConfig("SASRec", "ml-100k", config_dict=dict(tiny_config, **override))
