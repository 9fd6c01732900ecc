"""Fine-tuning our S3Rec from a checkpoint in the S3Rec reference code's format (s3rec_reference.py).

Every test writes its own small dataset in the reference's file format and its own small
reference-format state dict; none reads the shared checkpoints or datasets.
"""

import json
import math
import random

import pytest
import torch
from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_sam.config import SAMConfig
from recbole_sam.data.converters import convert_s3rec
from recbole_sam.data.dataset import create_dataset
from recbole_sam.errors import ConfigError
from recbole_sam.model.s3rec import S3Rec
from recbole_sam.model.s3rec_reference import LAYER_MODULES, reference_keys
from recbole_sam.quick_start import run_recbole_sam

ITEMS, ATTRIBUTES, HIDDEN, LAYERS, HEADS, WINDOW = 15, 5, 8, 1, 2, 10
SMALL = {
    "hidden_size": HIDDEN, "inner_size": 4 * HIDDEN, "n_layers": LAYERS, "n_heads": HEADS,
    "MAX_ITEM_LIST_LENGTH": WINDOW, "train_batch_size": 16, "eval_batch_size": 64, "epochs": 1,
    "show_progress": False, "state": "WARNING", "seed": 3, "data_path": "data",
}


def write_reference_dataset(folder):
    """``Tiny.txt`` and ``Tiny_item2attributes.json`` in the reference's format. Items first
    appear out of id order, so RecBole's token ids differ from the reference's ids."""
    rng = random.Random(0)
    order = [9, 3, 14, 1, 7, 12, 5, 15, 2, 11, 4, 8, 13, 6, 10]
    lines = []
    for user in range(1, 13):
        start = (user - 1) % len(order)
        items = [order[(start + step) % len(order)] for step in range(6 + user % 3)]
        lines.append(f"{user} {' '.join(map(str, items))}\n")
    attributes = {str(item): sorted(rng.sample(range(1, ATTRIBUTES + 1), 1 + item % 2)) for item in range(1, ITEMS + 1)}
    attributes["1"] = list(range(1, ATTRIBUTES + 1))  # every attribute is used
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Tiny.txt").write_text("".join(lines))
    (folder / "Tiny_item2attributes.json").write_text(json.dumps(attributes))
    return folder


def reference_state(items=ITEMS, attributes=ATTRIBUTES, hidden=HIDDEN, layers=LAYERS, window=WINDOW):
    """A reference ``S3RecModel`` state dict; item row i and attribute row a are recognisable."""
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key in reference_keys(layers):
        module = key.rsplit(".", 1)[0]
        if key.endswith("bias") or "LayerNorm" in module:
            shape = (4 * hidden,) if module.endswith("dense_1") else (hidden,)
        elif module.endswith("dense_1"):
            shape = (4 * hidden, hidden)
        elif module.endswith("dense_2"):
            shape = (hidden, 4 * hidden)
        else:
            shape = (hidden, hidden)
        state[key] = 0.3 * torch.randn(shape, generator=generator)
        if "LayerNorm.weight" in key:
            state[key] += 1
    state["item_embeddings.weight"] = torch.randn(items + 2, hidden, generator=generator)
    state["item_embeddings.weight"][:, 0] = torch.arange(items + 2, dtype=torch.float)  # column 0 = row id
    state["attribute_embeddings.weight"] = torch.randn(attributes + 1, hidden, generator=generator)
    state["attribute_embeddings.weight"][:, 0] = torch.arange(attributes + 1, dtype=torch.float)
    state["position_embeddings.weight"] = torch.randn(window, hidden, generator=generator)
    return state


@pytest.fixture
def checkpoint(tmp_path):
    """The dataset converted into data/Tiny, and the path of a fitting reference checkpoint."""
    convert_s3rec("Tiny", write_reference_dataset(tmp_path / "src"), "data")
    path = tmp_path / "Tiny-epochs-150.pt"
    torch.save(reference_state(), path)
    return str(path)


def finetune_config(path, **overrides):
    settings = dict(SMALL, train_stage="finetune", pre_model_path=path, pre_model_format="reference", padding_side="left")
    return SAMConfig("S3Rec", "Tiny", config_dict=dict(settings, **overrides))


def build_model(config):
    init_seed(config["seed"], True)
    dataset = create_dataset(config)
    train_data = data_preparation(config, dataset)[0]
    return S3Rec(config, train_data._dataset), train_data


def reference_finetune_forward(state, input_ids, heads):
    """The reference's ``S3RecModel.finetune`` in eval mode (models.py:150-180, modules.py),
    written out from its state dict: left-padded ids, causal and padding mask."""

    def linear(x, name):
        return x @ state[f"{name}.weight"].T + state[f"{name}.bias"]

    def layer_norm(x, name):
        return torch.nn.functional.layer_norm(x, x.shape[-1:], state[f"{name}.weight"], state[f"{name}.bias"], 1e-12)

    length = input_ids.size(1)
    keep = (input_ids > 0).unsqueeze(1).unsqueeze(2) & torch.tril(torch.ones(length, length, dtype=torch.bool))
    mask = (~keep).float() * -10000.0
    hidden = state["item_embeddings.weight"][input_ids] + state["position_embeddings.weight"][torch.arange(length)]
    hidden = layer_norm(hidden, "LayerNorm")
    size = hidden.size(-1) // heads
    for layer in range(LAYERS):
        name = f"item_encoder.layer.{layer}"
        split = lambda x: x.view(*x.shape[:2], heads, size).permute(0, 2, 1, 3)  # noqa: E731
        q, k, v = (split(linear(hidden, f"{name}.attention.{part}")) for part in ("query", "key", "value"))
        probs = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(size) + mask, dim=-1)
        context = (probs @ v).permute(0, 2, 1, 3).reshape(hidden.shape)
        hidden = layer_norm(linear(context, f"{name}.attention.dense") + hidden, f"{name}.attention.LayerNorm")
        inner = linear(hidden, f"{name}.intermediate.dense_1")
        inner = inner * 0.5 * (1.0 + torch.erf(inner / math.sqrt(2.0)))
        hidden = layer_norm(linear(inner, f"{name}.intermediate.dense_2") + hidden, f"{name}.intermediate.LayerNorm")
    return hidden


def test_each_reference_row_lands_in_its_recbole_row(checkpoint):
    model, train_data = build_model(finetune_config(checkpoint))
    dataset, reference = train_data._dataset, reference_state()
    item_tokens = dataset.field2id_token["item_id"]
    assert list(item_tokens[1:4]) != ["1", "2", "3"]  # the test means something: ids are re-ordered
    for token_id, token in enumerate(item_tokens[1:], start=1):
        assert torch.equal(model.item_embedding.weight[token_id], reference["item_embeddings.weight"][int(token)])
    assert torch.equal(model.item_embedding.weight[0], reference["item_embeddings.weight"][0])
    assert torch.equal(model.item_embedding.weight[model.mask_token], reference["item_embeddings.weight"][ITEMS + 1])
    # RecBole's attribute rows have no padding row: row r is the attribute of token id r + 1.
    for token_id, token in enumerate(dataset.field2id_token["categories"][1:], start=1):
        assert torch.equal(model.feature_embedding.weight[token_id - 1], reference["attribute_embeddings.weight"][int(token)])
    for module in LAYER_MODULES:
        ours = module.replace("attention.", "multi_head_attention.").replace("intermediate.", "feed_forward.")
        assert torch.equal(model.state_dict()[f"trm_encoder.layer.0.{ours}.weight"], reference[f"item_encoder.layer.0.{module}.weight"])
    for head in ("LayerNorm", "aap_norm", "mip_norm", "map_norm", "sp_norm"):
        assert torch.equal(getattr(model, head).bias, reference[f"{head}.bias"])


def test_one_forward_pass_equals_the_references(checkpoint):
    model, train_data = build_model(finetune_config(checkpoint))
    model.eval()
    token_id = train_data._dataset.field2token_id["item_id"]
    histories = [[9, 3, 14], [7, 12, 5, 15, 2, 11, 4]]
    right_padded = torch.tensor([[token_id[str(i)] for i in items] + [0] * (WINDOW - len(items)) for items in histories])
    left_padded = torch.tensor([[0] * (WINDOW - len(items)) + items for items in histories])  # the reference's ids
    with torch.no_grad():
        ours = model.forward(right_padded, bidirectional=False)
        ours = model.gather_indexes(ours, torch.tensor([len(items) - 1 for items in histories]))
    theirs = reference_finetune_forward(reference_state(), left_padded, HEADS)[:, -1]
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_perturbing_one_sequence_leaves_the_others_unchanged(checkpoint):
    model, _ = build_model(finetune_config(checkpoint))
    model.eval()
    batch = torch.tensor([[1, 2, 3] + [0] * 7, [4, 5, 6, 7, 8] + [0] * 5])
    changed = batch.clone()
    changed[0, 1] = 9
    with torch.no_grad():
        assert torch.allclose(model.forward(batch, False)[1], model.forward(changed, False)[1])


def _drop(key):
    state = reference_state()
    del state[key]
    return state


@pytest.mark.parametrize(
    "state, overrides, message",
    [
        (reference_state(items=ITEMS + 1), {}, r"pre_model_path: the dataset has 15 items, the reference checkpoint .* 16"),
        (reference_state(attributes=ATTRIBUTES - 1), {}, r"the dataset has 5 attributes, the reference checkpoint .* 4"),
        (reference_state(), {"hidden_size": 16, "inner_size": 64}, r"hidden_size: 16 does not fit the reference checkpoint .* 8"),
        (reference_state(), {"MAX_ITEM_LIST_LENGTH": 12}, r"MAX_ITEM_LIST_LENGTH: 12 does not fit the reference checkpoint .* 10"),
        (reference_state(), {"n_layers": 2}, r"n_layers: 2 does not fit the reference checkpoint .* 1"),
        (_drop("sp_norm.bias"), {}, r"pre_model_path: .* lacks sp_norm.bias of a reference S3Rec checkpoint"),
        ({"state_dict": reference_state()}, {}, r"is not a reference S3Rec checkpoint .*pre_model_format: recbole"),
        (reference_state(), {"pre_model_format": "tf"}, r"pre_model_format: 'tf' is not one of recbole, reference"),
    ],
)
def test_a_checkpoint_that_does_not_fit_is_refused(state, overrides, message, checkpoint, tmp_path):
    path = tmp_path / "misfit.pt"
    torch.save(state, path)
    settings = dict(dict(SMALL, train_stage="finetune", pre_model_path=str(path), pre_model_format="reference"), **overrides)
    with pytest.raises(ConfigError, match=message):
        run_recbole_sam("S3Rec", "Tiny", config_dict=settings)
    assert not (tmp_path / "saved").exists() or not any((tmp_path / "saved").rglob("*.pth"))


def test_an_item_id_beyond_the_checkpoint_is_refused(tmp_path):
    folder = write_reference_dataset(tmp_path / "src")
    text = (folder / "Tiny.txt").read_text().replace(" 15", " 99")  # item 15 becomes 99: same count, no row
    (folder / "Tiny.txt").write_text(text)
    attributes = json.loads((folder / "Tiny_item2attributes.json").read_text())
    attributes["99"] = attributes.pop("15")
    (folder / "Tiny_item2attributes.json").write_text(json.dumps(attributes))
    convert_s3rec("Tiny", folder, "data")
    torch.save(reference_state(), tmp_path / "ref.pt")
    with pytest.raises(ConfigError, match=r"pre_model_path: item '99' of the dataset has no row .* \(ids 1\.\.15\)"):
        build_model(finetune_config(str(tmp_path / "ref.pt")))


def test_sam_fine_tunes_from_a_reference_checkpoint(checkpoint):
    settings = dict(SMALL, train_stage="finetune", pre_model_path=checkpoint, pre_model_format="reference",
                    padding_side="left", trainer="sam", rho=0.05)
    result = run_recbole_sam("S3Rec", "Tiny", config_dict=settings)
    assert result["record"]["files"]["pretrained_checkpoint"].endswith("Tiny-epochs-150.pt")
    tuned = torch.load(result["checkpoint"], weights_only=False)["state_dict"]
    start = reference_state()
    # Trained from the mapped start: the encoder moved, but not far from the reference weights.
    moved = tuned["trm_encoder.layer.0.feed_forward.dense_2.weight"] - start["item_encoder.layer.0.intermediate.dense_2.weight"]
    assert 0 < moved.abs().max() < 0.1
    assert 0 <= result["test_result"]["hit@10"] <= 1


def test_bce_fine_tuning_loss_equals_our_sasrecs_paper_loss(checkpoint):
    """The reference fine-tunes S3Rec as SASRec (models.py:150, trainers.py:92-108): with the same
    weights (no mask row) and the same draws, our S3Rec's BCE sequence loss is our SASRec's."""
    from recbole_sam.model.sasrec import SASRec

    paper = dict(loss_type="BCE", train_scheme="sequence", neg_exclude="user", pack_sequences=False)
    s3rec, train_data = build_model(finetune_config(checkpoint, **paper))
    config = SAMConfig("SASRec", "Tiny", config_dict=dict(SMALL, padding_side="left", **paper))
    sasrec = SASRec(config, train_data._dataset)
    state = {name: tensor for name, tensor in s3rec.state_dict().items() if name in sasrec.state_dict()}
    state["item_embedding.weight"] = state["item_embedding.weight"][:-1]
    sasrec.load_state_dict(state)
    s3rec.eval(), sasrec.eval()
    batch = next(iter(train_data))
    torch.manual_seed(5)
    ours = s3rec.calculate_loss(batch)
    torch.manual_seed(5)
    theirs = sasrec.calculate_loss(batch)
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert not torch.allclose(ours, s3rec.calculate_loss(batch))  # a new draw of negatives


def test_packed_fine_tuning_equals_the_padded_layout(checkpoint):
    """pack_sequences (SASRec's packed causal encoder) changes the layout, not the numbers: the same
    BCE sequence loss for the same draws, and the same full-ranking scores, as RecBole's padded
    left window (eval mode)."""
    paper = dict(loss_type="BCE", train_scheme="sequence", neg_exclude="user")
    packed, train_data = build_model(finetune_config(checkpoint, pack_sequences=True, **paper))
    padded, _ = build_model(finetune_config(checkpoint, pack_sequences=False, **paper))
    padded.load_state_dict(packed.state_dict())
    packed.eval(), padded.eval()
    batch = next(iter(train_data))
    losses = []
    for model in (packed, padded):
        torch.manual_seed(5)
        losses.append(model.calculate_loss(batch))
    assert torch.allclose(*losses, atol=1e-5)
    with torch.no_grad():
        scores = [model.full_sort_predict(batch) for model in (packed, padded)]
    assert scores[0].shape == (len(batch), packed.n_items - 1) and torch.allclose(*scores, atol=1e-4)
    token_id = train_data._dataset.field2token_id["item_id"]
    histories = [[9, 3, 14], [7, 12, 5, 15, 2, 11, 4]]
    right_padded = torch.tensor([[token_id[str(i)] for i in items] + [0] * (WINDOW - len(items)) for items in histories])
    with torch.no_grad():  # and the reference's own forward pass (left window, most recent item last)
        ours = packed.finetune_hidden(right_padded, torch.tensor([len(items) for items in histories]))
    theirs = reference_finetune_forward(reference_state(), torch.tensor([[0] * (WINDOW - len(i)) + i for i in histories]), HEADS)
    assert torch.allclose(ours, theirs[:, -1], atol=1e-5)
