"""CL4SRec: its augmentation operators and InfoNCE on hand-made tensors, then the model on ml-100k."""

import math

import pytest
import torch
from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_sam.config import SAMConfig
from recbole_sam.data.dataset import create_dataset
from recbole_sam.errors import ConfigError
from recbole_sam.model import cl4srec
from recbole_sam.model.cl4srec import CL4SRec, augment_pair, crop, info_nce, mask, reorder
from recbole_sam.quick_start import run_recbole_sam
from recbole_sam.rng import RandomDraws

MASK = 99
SEEDS = range(40)


def batch():
    """Right-padded sequences of distinct items, lengths 10, 7, 5, 2 and 1."""
    lengths = [10, 7, 5, 2, 1]
    seq = torch.zeros(len(lengths), 12, dtype=torch.long)
    for row, n in enumerate(lengths):
        seq[row, :n] = torch.arange(1, n + 1) + 10 * row
    return seq, torch.tensor(lengths)


def run_unchanged(operator):
    """``operator(seq, len)`` under each seed; checks it never writes into its inputs."""
    seq, lens = batch()
    for seed in SEEDS:
        torch.manual_seed(seed)
        out_seq, out_len = operator(seq, lens)
        assert torch.equal(seq, batch()[0]) and torch.equal(lens, batch()[1])
        yield seq, lens, out_seq, out_len


def test_crop_keeps_a_contiguous_window_of_floor_eta_n_items_at_the_front():
    starts = set()
    for seq, lens, out, out_len in run_unchanged(lambda s, n: crop(s, n, 0.6)):
        for row, n in enumerate(lens.tolist()):
            c = max(1, math.floor(0.6 * n))
            assert out_len[row] == c
            assert (out[row, c:] == 0).all()  # right padding
            window = out[row, :c].tolist()
            start = seq[row].tolist().index(window[0])
            assert window == seq[row, start : start + c].tolist() and start + c <= n
            starts.add((row, start))
    assert {s for r, s in starts if r == 0} == set(range(10 - 6 + 1))  # every start is drawn


def test_mask_replaces_floor_gamma_n_items_and_nothing_else():
    masked_positions = set()
    for seq, lens, out, out_len in run_unchanged(lambda s, n: mask(s, n, 0.3, MASK)):
        assert torch.equal(out_len, lens)
        for row, n in enumerate(lens.tolist()):
            is_mask = out[row] == MASK
            assert is_mask.sum() == math.floor(0.3 * n)
            assert not is_mask[n:].any() and (out[row, n:] == 0).all()
            assert torch.equal(out[row][~is_mask], seq[row][~is_mask])
            masked_positions |= {(row, p) for p in is_mask.nonzero().flatten().tolist()}
    assert {p for r, p in masked_positions if r == 0} == set(range(10))


def test_reorder_permutes_one_contiguous_block_of_floor_beta_n_items():
    shuffled = 0
    for seq, lens, out, out_len in run_unchanged(lambda s, n: reorder(s, n, 0.6)):
        assert torch.equal(out_len, lens)
        for row, n in enumerate(lens.tolist()):
            r = math.floor(0.6 * n)
            moved = (out[row] != seq[row]).nonzero().flatten().tolist()
            if moved:
                assert moved[-1] - moved[0] < r  # all moved items lie in one block of length r
            fits = [
                s
                for s in range(n - r + 1)
                if sorted(out[row, s : s + r].tolist()) == seq[row, s : s + r].tolist()
                and torch.equal(out[row, :s], seq[row, :s])
                and torch.equal(out[row, s + r :], seq[row, s + r :])
            ]
            assert fits, (seq[row], out[row])
            shuffled += bool(moved)
    assert shuffled > len(SEEDS)  # the operator does reorder


def test_each_sequence_gets_two_different_operators_and_length_one_stays():
    operators = [lambda s, n: crop(s, n, 0.6), lambda s, n: mask(s, n, 1.0, MASK), lambda s, n: reorder(s, n, 1.0)]
    pairs = set()
    for seq, lens, (seq1, len1, seq2, len2, op1, op2), _ in run_unchanged(lambda s, n: (augment_pair(s, n, operators), n)):
        assert (op1 != op2).all()
        pairs |= set(zip(op1.tolist(), op2.tolist()))
        for view, view_len, op in ((seq1, len1, op1), (seq2, len2, op2)):
            for row, n in enumerate(lens.tolist()):
                if n == 1:  # mask with gamma 1 would replace it: it must not
                    assert view_len[row] == 1 and torch.equal(view[row], seq[row])
                elif op[row] == 0:
                    assert view_len[row] == math.floor(0.6 * n)
                elif op[row] == 1:
                    assert view_len[row] == n and (view[row, :n] == MASK).all()
                else:
                    assert view_len[row] == n and sorted(view[row, :n].tolist()) == seq[row, :n].tolist()
    assert pairs == {(a, b) for a in range(3) for b in range(3) if a != b}


def hand_info_nce(z1, z2, tau, cosine):
    """Mean over the 2N anchors of -s(a, partner)/τ + log Σ_{j ≠ a} exp(s(a, j)/τ)."""
    views = list(z1) + list(z2)
    n = len(z1)

    def s(a, b):
        return (a @ b) / (a.norm() * b.norm()) if cosine else a @ b

    losses = []
    for a in range(2 * n):
        partner = (a + n) % (2 * n)
        others = torch.stack([s(views[a], views[j]) / tau for j in range(2 * n) if j != a])
        losses.append(-s(views[a], views[partner]) / tau + torch.logsumexp(others, dim=0))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_info_nce_matches_a_hand_computation(similarity):
    z1 = torch.tensor([[1.0, 0.0, 2.0], [0.5, -1.0, 0.0]])
    z2 = torch.tensor([[0.0, 1.0, 1.5], [1.0, -2.0, 0.5]])
    expected = hand_info_nce(z1, z2, 0.5, similarity == "cosine")
    assert info_nce(z1, z2, 0.5, similarity).item() == pytest.approx(expected.item(), rel=1e-6)
    # Swapping the positives makes the loss larger: it does reward matching partners.
    assert info_nce(z1, z2.flip(0), 0.5, similarity) > info_nce(z1, z2, 0.5, similarity)


def test_bad_options_are_refused_with_the_key():
    config = dict(crop_eta=0.6, mask_gamma=0.3, reorder_beta=0.6, cl_temperature=1.0, cl_weight=0.1, cl_similarity="cos", cl_fast_path=True)
    with pytest.raises(ConfigError, match="cl_similarity"):
        CL4SRec(config, None)
    with pytest.raises(ConfigError, match="crop_eta"):
        CL4SRec(dict(config, cl_similarity="dot", crop_eta=0), None)
    with pytest.raises(ConfigError, match="cl_fast_path"):
        CL4SRec(dict(config, cl_similarity="dot", cl_fast_path="yes"), None)


@pytest.fixture
def model_and_batch(tiny_config, request):
    """A CL4SRec, a training batch and a test batch; ``request.param`` is ``loss_type train_scheme``."""
    loss_type, train_scheme = getattr(request, "param", "CE prefix").split()
    config = SAMConfig("CL4SRec", "ml-100k", config_dict=dict(tiny_config, loss_type=loss_type, train_scheme=train_scheme))
    init_seed(config["seed"], config["reproducibility"])
    train, _, test = data_preparation(config, create_dataset(config))
    model = CL4SRec(config, train._dataset)
    return model, next(iter(train)), next(iter(test))[0]


@pytest.mark.parametrize("model_and_batch", ["CE prefix", "CE sequence"], indirect=True)
def test_the_mask_token_is_never_scored(model_and_batch):
    model, train_batch, test_batch = model_and_batch
    model.eval()
    assert model.item_embedding.num_embeddings == model.n_items + 1 == model.mask_token + 1
    scores, loss = model.full_sort_predict(test_batch), model.next_item_loss(train_batch)
    assert scores.shape == (test_batch["item_id_list"].size(0), model.n_items)
    with torch.no_grad():
        model.item_embedding.weight[model.mask_token] = 100.0  # would dominate any score it entered
    torch.testing.assert_close(model.full_sort_predict(test_batch), scores)
    torch.testing.assert_close(model.next_item_loss(train_batch), loss)


@pytest.mark.parametrize("model_and_batch", ["CE prefix", "BPR prefix", "BCE prefix", "CE sequence", "BCE sequence"], indirect=True)
def test_loss_is_next_item_plus_weighted_infonce_and_leaves_the_batch_alone(model_and_batch):
    model, train_batch, _ = model_and_batch
    model.eval()  # the one packed pass draws its dropout masks in another order than the two separate losses
    before = {key: train_batch[key].clone() for key in train_batch.columns}
    draws = RandomDraws()
    total = model.calculate_loss(train_batch)
    draws.restore()
    next_item, contrastive = model.next_item_loss(train_batch), model.contrastive_loss(train_batch)
    assert total.dim() == 0 and contrastive > 0
    torch.testing.assert_close(total, next_item + 0.1 * contrastive)
    for key, value in before.items():
        assert torch.equal(train_batch[key], value), key


def test_both_sam_passes_see_the_same_views(model_and_batch, monkeypatch):
    model, train_batch, _ = model_and_batch
    model.train()
    views = []

    def recording(*args):
        views.append(augment_pair_original(*args))
        return views[-1]

    augment_pair_original = cl4srec.augment_pair
    monkeypatch.setattr(cl4srec, "augment_pair", recording)
    draws = RandomDraws()
    first = model.calculate_loss(train_batch)
    draws.restore()
    second = model.calculate_loss(train_batch)
    third = model.calculate_loss(train_batch)  # no restore: new views and dropout
    assert first.item() == second.item() != third.item()
    assert all(torch.equal(a, b) for a, b in zip(views[0], views[1]))
    assert not all(torch.equal(a, b) for a, b in zip(views[0], views[2]))


@pytest.mark.parametrize("trainer", ["plain", "sam"])
def test_cl4srec_trains_to_nonzero_metrics(tiny_config, trainer):
    result = run_recbole_sam("CL4SRec", "ml-100k", config_dict=dict(tiny_config, trainer=trainer), saved=False)
    assert result["test_result"]["hit@10"] > 0
