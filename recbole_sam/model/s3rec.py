"""S3Rec (Zhou et al., "S3-Rec: Self-Supervised Learning for Sequential Recommendation with
Mutual Information Maximization", CIKM'20): RecBole's model, with clear errors and a
fine-tuning stage that loads its pre-trained checkpoint on torch >= 2.6.

Both stages are RecBole's: ``train_stage: pretrain`` (four self-supervised losses over item
attributes, masked items and segments, re-drawn with Python's ``random`` on every call, which
the SAM trainer replays for its second pass) and ``train_stage: finetune`` (loads
``pre_model_path``). ``run_recbole_sam`` runs one after the other when ``train_stage`` is not set.
``pre_model_format: reference`` fine-tunes from the S3Rec reference code's released checkpoints
instead (see s3rec_reference.py), and ``padding_side: left`` gives the fine-tuning stage the
reference's positions (the most recent item in the last of the MAX_ITEM_LIST_LENGTH slots).
"""

import os
from contextlib import contextmanager

import torch
from recbole.model.sequential_recommender.s3rec import S3Rec as RecBoleS3Rec

from recbole_sam.compat import trusted_torch_load
from recbole_sam.errors import ConfigError
from recbole_sam.model.s3rec_reference import FORMATS, check_reference_shapes, load_reference_checkpoint, reference_state_for


def check_options(config):
    """Refuse a bad ``pre_model_format``, and a reference checkpoint that does not fit the model's
    sizes, before the data are loaded (SAMConfig calls this; the dataset fit is checked later)."""
    fmt = config.get("pre_model_format", "recbole")
    if fmt not in FORMATS:
        raise ConfigError(f"pre_model_format: {fmt!r} is not one of {', '.join(FORMATS)}")
    path = str(config.get("pre_model_path"))
    if config.get("train_stage") == "finetune" and fmt == "reference" and os.path.isfile(path):
        check_reference_shapes(load_reference_checkpoint(path), config, path)


@contextmanager
def _recbole_loads(state_dict):
    """RecBole's S3Rec loads ``torch.load(pre_model_path)["state_dict"]`` in its constructor;
    inside this block that call returns ``state_dict`` (the re-indexed reference checkpoint)."""
    original = torch.load
    torch.load = lambda *args, **kwargs: {"state_dict": state_dict}
    try:
        yield
    finally:
        torch.load = original


class S3Rec(RecBoleS3Rec):
    """RecBole's S3Rec with input checks and a torch >= 2.6 checkpoint load."""

    def __init__(self, config, dataset):
        attribute = config["item_attribute"]
        if attribute not in dataset.field2type:
            raise ConfigError(
                f"item_attribute: dataset {config['dataset']!r} has no item field {attribute!r} "
                f"(item fields: {', '.join(dataset.item_feat.columns) if dataset.item_feat is not None else 'none'}); "
                "S3Rec pre-trains on item attributes: load one with load_col and name it in item_attribute"
            )
        if config["train_stage"] not in ("pretrain", "finetune"):
            raise ConfigError(f"train_stage: {config['train_stage']!r} is not one of pretrain, finetune")
        if config["train_stage"] == "finetune" and not os.path.isfile(str(config["pre_model_path"])):
            raise ConfigError(
                f"pre_model_path: no file {config['pre_model_path']!r} (train_stage finetune loads the pre-trained model)"
            )
        if config["train_stage"] == "finetune" and config["pre_model_format"] == "reference":
            loading = _recbole_loads(reference_state_for(config, dataset))
        else:
            loading = trusted_torch_load()
        with loading:
            super().__init__(config, dataset)
        self.padding_side = config["padding_side"]

    def forward(self, item_seq, bidirectional=True):
        """RecBole's encoder; with ``padding_side: left`` the fine-tuning stage's right-padded rows
        are rolled into the reference's left-padded window, encoded, and rolled back, so that
        position ``MAX - 1`` is always the most recent item (S3Rec datasets.py:165-172).
        Pre-training builds left-padded rows itself, as the reference does."""
        if bidirectional or self.padding_side != "left":
            return super().forward(item_seq, bidirectional)
        width = item_seq.size(1)
        length = (item_seq > 0).sum(dim=1, keepdim=True)
        slots = torch.arange(width, device=item_seq.device).unsqueeze(0)
        left = item_seq.gather(1, (slots + length) % width)
        hidden = super().forward(left, bidirectional)
        back = ((slots - length) % width).unsqueeze(-1).expand(-1, -1, hidden.size(-1))
        return hidden.gather(1, back)
