"""The paper-setting switches: history-masked evaluation, padding and positions, second-pass
draws, negatives that avoid every item of the user, rho schedules and run records."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from recbole.data import data_preparation
from recbole.model.sequential_recommender.sasrec import SASRec as RecBoleSASRec
from recbole.trainer import Trainer
from recbole.utils import init_seed

from recbole_sam.config import SAMConfig
from recbole_sam.data.dataset import create_dataset
from recbole_sam.errors import ConfigError
from recbole_sam.model.sasrec import SASRec
from recbole_sam.trainer import PlainTrainer, SAMTrainer


def prepare(tiny_config, model="SASRec", dataset="ml-100k", **options):
    config = SAMConfig(model, dataset, config_dict=dict(tiny_config, **options))
    init_seed(config["seed"], True)
    data = data_preparation(config, create_dataset(config))
    init_seed(config["seed"], True)
    return config, data


# -- history-masked evaluation -------------------------------------------------------------

HAND_MADE = {  # user -> items in time order; the last is the test target, the one before the valid target
    "u1": ["a", "b", "c", "d", "e"],
    "u2": ["f", "a", "g", "b"],
}


def write_hand_made_dataset(root):
    folder = Path(root) / "hand"
    folder.mkdir(parents=True)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for user, items in HAND_MADE.items():
        lines += [f"{user}\t{item}\t{t}" for t, item in enumerate(items)]
    (folder / "hand.inter").write_text("\n".join(lines) + "\n")
    return str(root)


def hand_made_config(tmp_path, tiny_config, **options):
    defaults = dict(topk=[1, 2], valid_metric="NDCG@2", train_scheme="sequence")
    return dict(
        tiny_config,
        data_path=write_hand_made_dataset(tmp_path / "data"),
        load_col={"inter": ["user_id", "item_id", "timestamp"]},
        user_inter_num_interval="[0,inf)",
        item_inter_num_interval="[0,inf)",
        eval_args={"split": {"LS": "valid_and_test"}, "group_by": "user", "order": "TO", "mode": "full"},
        **dict(defaults, **options),
    )


def test_masked_evaluation_excludes_history_items_and_matches_a_hand_computation(tmp_path, tiny_config):
    config, (train, valid, test) = prepare(
        hand_made_config(tmp_path, tiny_config, eval_mask_history=True, eval_report_both=True), dataset="hand"
    )
    dataset = train._dataset
    token = lambda item: int(dataset.token2id("item_id", item))  # noqa: E731
    model = SASRec(config, dataset)
    trainer = PlainTrainer(config, model)

    # Every user scores item "a" (in both users' history) highest, then the target, then the rest.
    def scores(interaction):
        result = torch.zeros(len(interaction), dataset.item_num)
        result[:, token("a")] = 10.0
        result[torch.arange(len(interaction)), interaction["item_id"]] = 5.0
        return result

    model.full_sort_predict = scores
    result = trainer.evaluate(test, load_best_model=False)
    # Masked: "a" is history for both users, so each target ranks first: HR@1 = NDCG@2 = 1.
    assert result["hit@1"] == 1.0 and result["ndcg@2"] == 1.0
    # Unmasked: each target ranks second: HR@1 = 0, HR@2 = 1, NDCG@2 = 1 / log2(3).
    assert result["unmasked_hit@1"] == 0.0 and result["unmasked_hit@2"] == 1.0
    assert result["unmasked_ndcg@2"] == pytest.approx(1 / math.log2(3), abs=1e-4)


@pytest.mark.parametrize("mask_value, expected", [("exclude", {"hit@1": 0.5, "hit@2": 1.0}), ("zero", {"hit@3": 0.5, "hit@4": 0.5})])
def test_eval_mask_value_on_a_target_that_repeats_a_history_item(mask_value, expected, tmp_path, tiny_config, monkeypatch):
    """u1's test target b repeats a history item; u2's target c scores below 0. By hand:
    scores a 10, b 5, c -0.2, g -0.5, f -1.
    exclude (history -inf, target kept): u1 ranks b 1st; u2's history f, a, g go, b stays above c: 2nd.
    zero (history 0, the reference's rule): u1's c, a, b tie at 0 above g and f: b is 1st to 3rd;
    u2's f, a, g at 0 and b at 5 rank above c: 5th. (Only tie-free cut-offs are asserted.)"""
    monkeypatch.setitem(HAND_MADE, "u1", ["c", "a", "b", "b"])
    monkeypatch.setitem(HAND_MADE, "u2", ["f", "a", "g", "c"])
    options = dict(eval_mask_history=True, eval_mask_value=mask_value, topk=[1, 2, 3, 4], valid_metric="NDCG@4")
    config, (train, valid, test) = prepare(hand_made_config(tmp_path, tiny_config, **options), dataset="hand")
    dataset = train._dataset
    model = SASRec(config, dataset)
    raw = torch.full((dataset.item_num,), -1.0)
    for item, score in {"a": 10.0, "b": 5.0, "c": -0.2, "g": -0.5}.items():
        raw[int(dataset.token2id("item_id", item))] = score
    model.full_sort_predict = lambda interaction: raw.repeat(len(interaction), 1)
    result = PlainTrainer(config, model).evaluate(test, load_best_model=False)
    assert {key: result[key] for key in expected} == expected


def test_history_of_valid_and_test_rows_is_every_earlier_item(tmp_path, tiny_config):
    _, (train, valid, test) = prepare(hand_made_config(tmp_path, tiny_config), dataset="hand")
    dataset = train._dataset
    u1 = torch.tensor([int(dataset.token2id("user_id", "u1"))])
    names = lambda ids: [dataset.id2token("item_id", int(i)) for i in ids]  # noqa: E731
    assert names(dataset.user_sequences.history(u1, 1)[1]) == ["a", "b", "c"]  # valid target d
    assert names(dataset.user_sequences.history(u1, 2)[1]) == ["a", "b", "c", "d"]  # test target e


def naive_metrics(model, loader, mask_history, k=10):
    """HR@k and NDCG@k by brute force: score, optionally drop earlier items of the user (not the
    target), rank."""
    dataset = loader._dataset
    hits, ndcgs = [], []
    with torch.no_grad():
        for batch in loader:
            interaction = batch[0]
            scores = model.full_sort_predict(interaction)
            scores[:, 0] = -np.inf
            for row in range(len(interaction)):
                user, target = int(interaction["user_id"][row]), int(interaction["item_id"][row])
                if mask_history:
                    sequence = dataset.user_sequences
                    earlier = sequence.items[sequence.indptr[user] : sequence.indptr[user] + int(sequence.cutoff[dataset.split_index][user])]
                    for item in set(earlier.tolist()) - {target}:
                        scores[row, item] = -np.inf
                rank = int((scores[row] > scores[row, target]).sum())
                hits.append(float(rank < k))
                ndcgs.append(1 / math.log2(rank + 2) if rank < k else 0.0)
    return {"hit@10": np.mean(hits), "ndcg@10": np.mean(ndcgs)}


@pytest.mark.parametrize("mask_history", [False, True])
def test_fast_evaluation_equals_recboles_and_a_brute_force_ranking(mask_history, tiny_config):
    config, (train, valid, test) = prepare(tiny_config, train_scheme="sequence", eval_mask_history=mask_history)
    model = SASRec(config, train._dataset)
    ours = PlainTrainer(config, model).evaluate(test, load_best_model=False)
    naive = naive_metrics(model.eval(), test, mask_history)
    for key in ("hit@10", "ndcg@10"):
        assert ours[key] == pytest.approx(naive[key], abs=1e-4)
    if not mask_history:
        assert dict(ours) == dict(Trainer(config, model).evaluate(test, load_best_model=False))


def test_mask_history_needs_one_valid_and_test_row_per_user(tiny_config):
    with pytest.raises(ConfigError, match="eval_mask_history"):
        prepare(tiny_config, eval_mask_history=True, eval_args={"split": {"RS": [0.8, 0.1, 0.1]}, "order": "TO", "group_by": "user", "mode": "full"})


# -- padding, positions, padding embedding ---------------------------------------------------


def test_position_ids_by_hand(tiny_config):
    config, (train, _, _) = prepare(tiny_config, MAX_ITEM_LIST_LENGTH=5)
    item_seq, lengths = torch.tensor([[7, 8, 9, 0], [6, 0, 0, 0]]), torch.tensor([3, 1])
    expected = {
        (): [[0, 1, 2, 3], [0, 1, 2, 3]],  # RecBole: from the oldest item, padding too
        (("padding_side", "left"),): [[2, 3, 4, 0], [4, 0, 0, 0]],  # most recent in slot 4 of 5
        (("position_from_prediction", True),): [[2, 1, 0, 0], [0, 0, 0, 0]],
    }
    for options, ids in expected.items():
        config, (train, _, _) = prepare(tiny_config, MAX_ITEM_LIST_LENGTH=5, **dict(options))
        assert SASRec(config, train._dataset).position_ids(item_seq, lengths).tolist() == ids


def test_most_recent_item_keeps_its_position_id_in_every_prefix(tiny_config):
    for options in ({"position_from_prediction": True}, {"padding_side": "left"}):
        config, (train, _, _) = prepare(tiny_config, MAX_ITEM_LIST_LENGTH=6, **options)
        model = SASRec(config, train._dataset)
        sequence = torch.tensor([[3, 4, 5, 6, 7, 0]])
        last_ids = {int(model.position_ids(sequence, torch.tensor([n]))[0, n - 1]) for n in range(1, 6)}
        assert len(last_ids) == 1


@pytest.mark.parametrize("pack", [False, True])
def test_left_padding_output_does_not_depend_on_the_batch_width(pack, tiny_config):
    config, (train, _, _) = prepare(tiny_config, padding_side="left", pack_sequences=pack)
    model = SASRec(config, train._dataset).eval()
    batch = next(iter(train))
    short = int(batch["item_length"].argmin())
    with torch.no_grad():
        in_batch = model.forward(batch["item_id_list"], batch["item_length"])[short]
        alone = model.forward(batch["item_id_list"][[short]], batch["item_length"][[short]])[0]
    torch.testing.assert_close(in_batch, alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pack", [False, True])
def test_with_every_switch_off_the_model_is_recboles_sasrec(pack, tiny_config):
    config, (train, _, _) = prepare(tiny_config, pack_sequences=pack)
    ours = SASRec(config, train._dataset).eval()
    config["loss_type"] = "CE"
    recboles = RecBoleSASRec(config, train._dataset).eval()
    recboles.load_state_dict(ours.state_dict())  # same parameter names: the same model
    batch = next(iter(train))
    with torch.no_grad():
        torch.testing.assert_close(
            ours.full_sort_predict(batch), recboles.full_sort_predict(batch), rtol=1e-5, atol=1e-5
        )


def test_zero_padding_row_stays_zero_after_sam_steps(tiny_config):
    config, (train, valid, _) = prepare(tiny_config, train_scheme="sequence", zero_padding=True, weight_decay=0.01)
    model = SASRec(config, train._dataset)
    assert torch.count_nonzero(model.item_embedding.weight[0]) == 0
    SAMTrainer(config, model)._train_epoch(train, 0)
    assert torch.count_nonzero(model.item_embedding.weight[0]) == 0
    assert torch.count_nonzero(model.item_embedding.weight[1]) > 0


# -- SAM's second pass, rho schedule --------------------------------------------------------


@pytest.mark.parametrize("draws, same", [("replay", True), ("fresh", False)])
def test_second_pass_draws(draws, same, tiny_config):
    config, (train, _, _) = prepare(tiny_config, train_scheme="sequence", sam_second_pass_draws=draws)
    model = SASRec(config, train._dataset)
    trainer = SAMTrainer(config, model)
    masks = []

    def loss_func(interaction):
        masks.append(torch.rand(4))  # what a dropout layer draws
        return model.calculate_loss(interaction)

    trainer._sam_loss(loss_func)(next(iter(train)))
    assert len(masks) == 2 and torch.equal(masks[0], masks[1]) == same


@pytest.mark.parametrize(
    "draws, same_negatives, same_dropout",
    [("replay", True, True), ("fresh_dropout", True, False), ("fresh", False, False)],
)
def test_second_pass_draws_negatives_and_dropout(draws, same_negatives, same_dropout, tiny_config):
    """Which draws SAM's second pass shares with its first, seen in the real SASRec's negatives
    and in the zeros its dropout layers put into their outputs."""
    config, (train, _, _) = prepare(tiny_config, train_scheme="sequence", sam_second_pass_draws=draws)
    model = SASRec(config, train._dataset)
    trainer = SAMTrainer(config, model)
    negatives, dropped = [], []
    sample = model.sample_negatives
    model.sample_negatives = lambda *args: negatives.append(sample(*args)) or negatives[-1]
    model.dropout.register_forward_hook(lambda module, inputs, output: dropped.append((output == 0) & (inputs[0] != 0)))

    trainer._sam_loss(model.calculate_loss)(next(iter(train)))
    assert len(dropped) == 2 and dropped[0].any()
    assert torch.equal(dropped[0], dropped[1]) == same_dropout
    if draws == "fresh_dropout":  # the second pass takes the kept draw instead of drawing again
        assert len(negatives) == 1
    else:
        assert len(negatives) == 2 and torch.equal(negatives[0], negatives[1]) == same_negatives
    assert model.data_draws is None  # kept only during the step


def test_fresh_dropout_keeps_cl4srec_views(tiny_config, monkeypatch):
    from recbole_sam.model import cl4srec

    config, (train, _, _) = prepare(
        tiny_config, model="CL4SRec", train_scheme="sequence", sam_second_pass_draws="fresh_dropout"
    )
    model = cl4srec.CL4SRec(config, train._dataset)
    views = []
    augment = cl4srec.augment_pair
    monkeypatch.setattr(cl4srec, "augment_pair", lambda *args: views.append(augment(*args)) or views[-1])
    SAMTrainer(config, model)._sam_loss(model.calculate_loss)(next(iter(train)))
    assert len(views) == 1  # drawn once, reused by the second pass


@pytest.mark.parametrize("schedule, expected", [("constant", [0.4, 0.4]), ("linear", [0.2, 0.4]), ("cosine", [0.2, 0.4])])
def test_rho_schedule(schedule, expected, tiny_config):
    config, (train, _, _) = prepare(tiny_config, train_scheme="sequence", rho=0.4, rho_schedule=schedule, epochs=2)
    trainer = SAMTrainer(config, SASRec(config, train._dataset))
    seen = []
    for epoch in range(2):
        trainer._set_rho(epoch)
        seen.append(trainer.optimizer.param_groups[0]["rho"])
    assert seen == pytest.approx(expected)


# -- negatives ------------------------------------------------------------------------------


def test_neg_exclude_user_never_samples_a_valid_or_test_item(tiny_config):
    config, (train, valid, test) = prepare(tiny_config, train_scheme="sequence", neg_exclude="user")
    model = SASRec(config, train._dataset)
    held_out = {}
    for loader in (valid, test):
        feat = loader._dataset.inter_feat
        for user, item in zip(feat["user_id"].tolist(), feat["item_id"].tolist()):
            held_out.setdefault(user, set()).add(item)
    batch = next(iter(train))
    torch.manual_seed(0)
    for _ in range(20):
        negatives = model.sample_negatives(batch["item_id_list"], batch["user_id"])
        for user, row in zip(batch["user_id"].tolist(), negatives.tolist()):
            assert not held_out[user] & set(row)


def test_neg_exclude_user_needs_the_sequence_scheme(tiny_config):
    with pytest.raises(ConfigError, match="neg_exclude"):
        SAMConfig("SASRec", "ml-100k", config_dict=dict(tiny_config, train_scheme="prefix", neg_exclude="user"))


# -- run records ----------------------------------------------------------------------------


def test_result_has_the_validation_curve_and_the_stopping_epoch(tiny_config):
    from recbole_sam.quick_start import run_recbole_sam

    result = run_recbole_sam("SASRec", "ml-100k", config_dict=dict(tiny_config, epochs=3, train_scheme="sequence"))
    history = result["history"]
    assert [entry["epoch"] for entry in history["curve"]] == [0, 1, 2]
    assert {"ndcg@10", "hit@10", "train_loss", "sharpness", "ascent_norm"} <= set(history["curve"][0])
    assert history["stopping_epoch"] == 2 and history["epochs"] == 3 and history["hit_cap"] is True
    best = max(history["curve"], key=lambda entry: (entry["ndcg@10"], entry["epoch"]))
    assert history["best_epoch"] == best["epoch"]


def test_recboles_own_sequential_models_get_masked_evaluation_too(tiny_config):
    from recbole_sam.quick_start import run_recbole_sam

    config = dict(tiny_config, epochs=1, eval_mask_history=True, eval_report_both=True, trainer="plain")
    result = run_recbole_sam("GRU4Rec", "ml-100k", config_dict=config)
    assert {"hit@10", "ndcg@10", "unmasked_hit@10", "unmasked_ndcg@10"} <= set(result["test_result"])
    # Masking only removes competitors of the target: never a worse rank.
    assert result["test_result"]["hit@10"] >= result["test_result"]["unmasked_hit@10"]
