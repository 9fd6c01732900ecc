"""The S3Rec reference code's pre-trained checkpoints (RUCAIBox/CIKM2020-S3Rec, ``reproduce/
<dataset>-epochs-<n>.pt``) as the starting point of our S3Rec's fine-tuning.

Such a file is a plain state dict of the reference's ``S3RecModel`` (models.py), keyed by its own
names and indexed by the ids of its data files: item row = the item id of ``NAME.txt`` (row 0
padding, the last row the mask token, models.py:12 and run_pretrain.py:86-87), attribute row = the
attribute id of ``NAME_item2attributes.json`` (row 0 padding, run_pretrain.py:88). RecBole numbers
items and attributes by its own token ids, so the rows are re-ordered by ``field2id_token``:
a dataset converted with ``dataset/prepare.py s3rec`` keeps the reference's ids as its tokens.

Select it with ``pre_model_format: reference`` next to ``pre_model_path`` and ``train_stage:
finetune``. A checkpoint that does not fit the model or the dataset is refused with a
``ConfigError`` before training starts.
"""

import re

import torch

from recbole_sam.errors import ConfigError

FORMATS = ("recbole", "reference")

# Reference name -> RecBole S3Rec name (RecBole's TransformerEncoder keeps the reference's inner
# names: query/key/value/dense/LayerNorm, dense_1/dense_2/LayerNorm; modules.py:80-150).
RENAMES = (
    (r"^item_embeddings\.", "item_embedding."),
    (r"^attribute_embeddings\.", "feature_embedding."),
    (r"^position_embeddings\.", "position_embedding."),
    (r"^item_encoder\.layer\.(\d+)\.attention\.", r"trm_encoder.layer.\1.multi_head_attention."),
    (r"^item_encoder\.layer\.(\d+)\.intermediate\.", r"trm_encoder.layer.\1.feed_forward."),
)
REQUIRED = ("item_embeddings.weight", "attribute_embeddings.weight", "position_embeddings.weight", "LayerNorm.weight")
HEADS = ("LayerNorm", "aap_norm", "mip_norm", "map_norm", "sp_norm")
LAYER_MODULES = (
    "attention.query", "attention.key", "attention.value", "attention.dense", "attention.LayerNorm",
    "intermediate.dense_1", "intermediate.dense_2", "intermediate.LayerNorm",
)


def reference_keys(n_layers):
    """Every key of a reference ``S3RecModel`` state dict with ``n_layers`` layers."""
    modules = [f"item_encoder.layer.{layer}.{module}" for layer in range(n_layers) for module in LAYER_MODULES]
    parameters = [f"{module}.{kind}" for module in modules + list(HEADS) for kind in ("weight", "bias")]
    return list(REQUIRED[:3]) + parameters


def recbole_name(reference_name):
    """The RecBole S3Rec parameter name of a reference ``S3RecModel`` parameter name."""
    for pattern, replacement in RENAMES:
        name, found = re.subn(pattern, replacement, reference_name)
        if found:
            return name
    return reference_name  # LayerNorm, aap_norm, mip_norm, map_norm, sp_norm: the same names


def load_reference_checkpoint(path):
    """The reference's state dict from ``path`` (tensors only: loaded with ``weights_only``).

    Raises:
        ConfigError: the file is not a reference ``S3RecModel`` state dict.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        raise ConfigError(f"pre_model_path: cannot read {path!r} as a reference S3Rec checkpoint ({type(error).__name__})") from None
    missing = [key for key in REQUIRED if not isinstance(state, dict) or key not in state]
    if missing:
        raise ConfigError(
            f"pre_model_path: {path!r} is not a reference S3Rec checkpoint (pre_model_format: reference): "
            f"no {', '.join(missing)}; RecBole's own checkpoints take pre_model_format: recbole"
        )
    return state


def check_reference_shapes(state, config, path):
    """Refuse a checkpoint whose keys or sizes differ from the configured model (before the data load).

    Raises:
        ConfigError: layers differ, a key is missing, or hidden size, inner size or max length differ.
    """
    layers = len({key.split(".")[2] for key in state if key.startswith("item_encoder.layer.")})
    if layers != config["n_layers"]:
        raise ConfigError(f"n_layers: {config['n_layers']!r} does not fit the reference checkpoint {path!r}, which has {layers}")
    missing = [key for key in reference_keys(layers) if key not in state]
    if missing:
        more = f" and {len(missing) - 1} more keys" if len(missing) > 1 else ""
        raise ConfigError(f"pre_model_path: {path!r} lacks {missing[0]}{more} of a reference S3Rec checkpoint")
    for key, ours, theirs in (
        ("hidden_size", config["hidden_size"], state["item_embeddings.weight"].shape[1]),
        ("MAX_ITEM_LIST_LENGTH", config["MAX_ITEM_LIST_LENGTH"], state["position_embeddings.weight"].shape[0]),
        ("inner_size", config["inner_size"], state["item_encoder.layer.0.intermediate.dense_1.weight"].shape[0]),
    ):
        if ours != theirs:
            raise ConfigError(f"{key}: {ours!r} does not fit the reference checkpoint {path!r}, which has {theirs!r}")


def _reference_rows(tokens, size, what, path):
    """The reference row of each RecBole token (a list of token strings): the token as an id."""
    rows = []
    for token in tokens:
        if not (isinstance(token, str) and token.isdigit() and 1 <= int(token) < size):
            raise ConfigError(
                f"pre_model_path: {what} {token!r} of the dataset has no row in {path!r} (ids 1..{size - 1}); "
                "convert the dataset from the reference's files with dataset/prepare.py s3rec"
            )
        rows.append(int(token))
    return torch.tensor(rows, dtype=torch.long)


def map_reference_state_dict(state, item_tokens, attribute_tokens, path="the checkpoint"):
    """The reference ``state`` renamed and re-indexed for RecBole's S3Rec.

    Args:
        state (dict): the reference ``S3RecModel`` state dict.
        item_tokens (list of str): RecBole's item tokens by token id, ``[PAD]`` first
            (``dataset.field2id_token[item_field]``).
        attribute_tokens (list of str): the attribute field's tokens by token id, ``[PAD]`` first.
        path (str): the file, for error messages.

    Returns:
        dict: RecBole S3Rec's state dict. Item row 0 (padding) and the mask row (last) come from
        the reference's padding and mask rows; item row i from the reference row of token i.
        RecBole keeps no attribute padding row: attribute row r holds token r + 1.

    Raises:
        ConfigError: the item or attribute counts or ids differ between checkpoint and dataset.
    """
    items, attributes = state["item_embeddings.weight"], state["attribute_embeddings.weight"]
    n_items, n_attributes = items.shape[0] - 2, attributes.shape[0] - 1
    for what, ours, theirs in (("items", len(item_tokens) - 1, n_items), ("attributes", len(attribute_tokens) - 1, n_attributes)):
        if ours != theirs:
            raise ConfigError(
                f"pre_model_path: the dataset has {ours} {what}, the reference checkpoint {path!r} {theirs}; "
                "fine-tune on the dataset it was pre-trained on, converted whole with dataset/prepare.py s3rec"
            )
    item_rows = torch.cat([torch.tensor([0]), _reference_rows(item_tokens[1:], n_items + 1, "item", path), torch.tensor([n_items + 1])])
    attribute_rows = _reference_rows(attribute_tokens[1:], n_attributes + 1, "attribute", path)
    mapped = {recbole_name(name): tensor.clone() for name, tensor in state.items()}
    mapped["item_embedding.weight"] = items[item_rows].clone()
    mapped["feature_embedding.weight"] = attributes[attribute_rows].clone()
    return mapped


def reference_state_for(config, dataset):
    """RecBole S3Rec's state dict from the reference checkpoint at ``config['pre_model_path']``,
    re-indexed for ``dataset``; every misfit is a ``ConfigError``."""
    path = str(config["pre_model_path"])
    state = load_reference_checkpoint(path)
    check_reference_shapes(state, config, path)
    return map_reference_state_dict(
        state,
        dataset.field2id_token[dataset.iid_field].tolist(),
        dataset.field2id_token[config["item_attribute"]].tolist(),
        path,
    )
