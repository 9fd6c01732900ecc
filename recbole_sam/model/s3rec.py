"""S3Rec (Zhou et al., "S3-Rec: Self-Supervised Learning for Sequential Recommendation with
Mutual Information Maximization", CIKM'20): RecBole's model, with clear errors and a
fine-tuning stage that loads its pre-trained checkpoint on torch >= 2.6.

Both stages are RecBole's: ``train_stage: pretrain`` (four self-supervised losses over item
attributes, masked items and segments) and ``train_stage: finetune`` (loads ``pre_model_path``).
``run_recbole_sam`` runs one after the other when ``train_stage`` is not set. Added:

- ``s3rec_fast_path`` (default on): the pre-training inputs from one tensor draw per batch, which
  SAM's second pass replays, and one packed encoder pass (s3rec_pretrain.py); the same losses.
  ``s3rec_mask_last``: always mask the most recent item, as the reference code does;
  ``s3rec_negative_segments: all_users``: cut negative segments from every user's sequence, as
  the reference does, not from the batch's (RecBole's ``batch``). ``s3rec_pretrain_samples:
  reference``: the reference's samples, every prefix of each user's training part (recbole_sam.data.dataset).
- ``pre_model_format: reference``: fine-tune from the S3Rec reference code's released
  checkpoints (s3rec_reference.py); ``padding_side: left`` gives the fine-tuning stage the
  reference's positions (the most recent item in the last of the MAX_ITEM_LIST_LENGTH slots).
- ``loss_type: BCE`` in fine-tuning: the reference's (SASRec's) loss, with ``train_scheme:
  sequence`` at every position of each user's sequence.
- ``pack_sequences`` (default on): fine-tuning and its evaluation run SASRec's causal encoder on
  packed rows (``sasrec.CausalEncoder``), the same hidden states as RecBole's padded layout.
The feed-forward activation is torch's fused GELU in both stages (RecBole's erf function).
"""

import os
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from recbole.model.sequential_recommender.s3rec import S3Rec as RecBoleS3Rec

from recbole_sam.checks import S3REC_STAGES, atomic_columns, require
from recbole_sam.compat import trusted_torch_load
from recbole_sam.data.dataset import PRETRAIN_SAMPLES
from recbole_sam.errors import ConfigError
from recbole_sam.model.cl4srec import use_uniform_dropout
from recbole_sam.model.s3rec_pretrain import attribute_table, build_inputs, draw, left_align, pretrain_loss
from recbole_sam.model.s3rec_reference import FORMATS, check_reference_shapes, load_reference_checkpoint, reference_state_for
from recbole_sam.model.sasrec import CausalEncoder, next_items, sample_negatives, trim_padding
from recbole_sam.rng import data_draw


# Where pre-training cuts its negative segments from: the batch's sequences end to end (RecBole),
# or every user's whole sequence end to end (the reference, utils.py:153-166).
NEGATIVE_SEGMENT_POOLS = ("batch", "all_users")


def check_options(config):
    """S3Rec's options, checked in this one place before the data are loaded (SAMConfig calls
    this): the stage, the item attribute it pre-trains on, ``pre_model_format``, and a reference
    checkpoint that does not fit the model's sizes (the dataset fit is checked later)."""
    stage = config.get("train_stage")
    require(stage in S3REC_STAGES, f"train_stage: {stage!r} is not one of {', '.join(S3REC_STAGES)}")
    # pre_model_path is checked by run_recbole_sam, before the log is written: a config for
    # fine-tuning may be built before its pre-trained model exists.
    attribute, item_file = config.get("item_attribute"), os.path.join(config["data_path"], f"{config['dataset']}.item")
    columns = atomic_columns(item_file) if os.path.isfile(item_file) else []
    load_col = config.get("load_col")
    if isinstance(load_col, dict) and "item" in load_col:
        columns = [column for column in columns if column in load_col["item"]]
    require(
        attribute in columns,
        f"item_attribute: dataset {config['dataset']!r} has no item field {attribute!r} loaded from {item_file} "
        f"(loaded: {', '.join(columns) or 'none'}); S3Rec pre-trains on an item attribute: load one with load_col "
        "and name it in item_attribute",
    )
    fmt = config.get("pre_model_format", "recbole")
    if fmt not in FORMATS:
        raise ConfigError(f"pre_model_format: {fmt!r} is not one of {', '.join(FORMATS)}")
    path = str(config.get("pre_model_path"))
    for key in ("s3rec_fast_path", "s3rec_mask_last"):
        if not isinstance(config.get(key, False), bool):
            raise ConfigError(f"{key}: must be True or False, got {config[key]!r}")
    if config.get("s3rec_mask_last") and not config.get("s3rec_fast_path", True):
        raise ConfigError("s3rec_mask_last: True needs s3rec_fast_path: True (RecBole's own loop masks every item alike)")
    samples = config.get("s3rec_pretrain_samples", "recbole")
    if samples not in PRETRAIN_SAMPLES:
        raise ConfigError(f"s3rec_pretrain_samples: {samples!r} is not one of {', '.join(PRETRAIN_SAMPLES)}")
    pool = config.get("s3rec_negative_segments", "batch")
    if pool not in NEGATIVE_SEGMENT_POOLS:
        raise ConfigError(f"s3rec_negative_segments: {pool!r} is not one of {', '.join(NEGATIVE_SEGMENT_POOLS)}")
    if pool != "batch" and not config.get("s3rec_fast_path", True):
        raise ConfigError(f"s3rec_negative_segments: {pool} needs s3rec_fast_path: True (RecBole's own loop cuts them from the batch)")
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


class S3Rec(CausalEncoder, RecBoleS3Rec):
    """RecBole's S3Rec with input checks, a torch >= 2.6 checkpoint load, the reference's
    checkpoints, the reference's fine-tuning loss (``loss_type: BCE``, as our SASRec's), and
    packed fine-tuning."""

    LOSS_TYPES = ("CE", "BPR", "BCE")

    def __init__(self, config, dataset):
        # The options are checked in check_options (SAMConfig); here what needs the loaded data.
        attribute = config["item_attribute"]
        if attribute not in dataset.field2type:
            raise ConfigError(
                f"item_attribute: dataset {config['dataset']!r} has no item field {attribute!r} "
                f"(item fields: {', '.join(dataset.item_feat.columns) if dataset.item_feat is not None else 'none'}); "
                "S3Rec pre-trains on item attributes: load one with load_col and name it in item_attribute"
            )
        if config["train_stage"] == "finetune" and not os.path.isfile(str(config["pre_model_path"])):
            raise ConfigError(
                f"pre_model_path: no file {config['pre_model_path']!r} (train_stage finetune loads the pre-trained model)"
            )
        if config["train_stage"] == "finetune" and config["pre_model_format"] == "reference":
            loading = _recbole_loads(reference_state_for(config, dataset))
        else:
            loading = trusted_torch_load()
        # RecBole's constructor knows CE and BPR; BCE takes the same inputs as BPR (as in SASRec).
        loss_type = config["loss_type"]
        config["loss_type"] = "BPR" if loss_type == "BCE" else loss_type
        try:
            with loading:
                super().__init__(config, dataset)
        finally:
            config["loss_type"] = loss_type
        self.loss_type = loss_type
        self.padding_side = config["padding_side"]
        # CausalEncoder's switches: S3Rec's positions are the slots of its window, padding keeps its position.
        self.pack_sequences, self.position_from_prediction, self.mask_padding_positions = bool(config["pack_sequences"]), False, False
        self.train_scheme = config["train_scheme"] or "prefix"
        self.neg_exclude = config["neg_exclude"] or "input"
        self.user_item_keys = getattr(dataset, "user_item_keys", None)  # sorted user * item_num + item
        self.fast_path = bool(config["s3rec_fast_path"])
        self.mask_last = bool(config["s3rec_mask_last"])
        self.segment_pool = None  # None: the batch's items (RecBole's)
        if (config["s3rec_negative_segments"] or "batch") == "all_users":
            if getattr(dataset, "user_sequences", None) is None:
                raise ConfigError("s3rec_negative_segments: all_users needs the dataset of recbole_sam.data.dataset.create_dataset")
            # Every user's train, valid and test items in time order, users in RecBole's id order.
            self.segment_pool = torch.as_tensor(dataset.user_sequences.items)
        self.attributes = attribute_table(self.item_feat[self.FEATURE_FIELD], self.n_features)  # [items F]; not a parameter
        if self.fast_path and self.train_stage == "pretrain":
            use_uniform_dropout(self)  # the same dropout masks in distribution, faster on CPU
        self._use_fused_activation(config["hidden_act"])  # both stages share the encoder
        if self.neg_exclude == "user" and self.user_item_keys is None:
            raise ConfigError("neg_exclude: user needs the dataset of recbole_sam.data.dataset.create_dataset (it knows every item of each user)")

    def forward(self, item_seq, bidirectional=True):
        """RecBole's encoder; with ``padding_side: left`` the fine-tuning stage's right-padded rows
        are rolled into the reference's left-padded window, encoded, and rolled back, so that
        position ``MAX - 1`` is always the most recent item (S3Rec datasets.py:165-172).
        Pre-training builds left-padded rows itself, as the reference does."""
        if bidirectional or self.padding_side != "left":
            return super().forward(item_seq, bidirectional)
        width, length = item_seq.size(1), (item_seq > 0).sum(dim=1)
        hidden = super().forward(left_align(item_seq, length), bidirectional)
        slots = torch.arange(width, device=item_seq.device).unsqueeze(0)
        back = ((slots - length.unsqueeze(1)) % width).unsqueeze(-1).expand(-1, -1, hidden.size(-1))
        return hidden.gather(1, back)

    def calculate_loss(self, interaction):
        if self.train_stage == "pretrain" and self.fast_path:
            inputs = self.pretrain_inputs(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
            self.attributes = self.attributes.to(inputs[0].device)
            return pretrain_loss(self, self.attributes, inputs)
        if self.train_stage == "pretrain" or self.loss_type != "BCE":
            return super().calculate_loss(interaction)
        return self.finetune_bce_loss(interaction)

    def pretrain_inputs(self, item_seq, item_seq_len):
        """RecBole's six pre-training sequences (``reconstruct_pretrain_data`` less the attribute
        targets, which are ``self.attributes[positive items]``), built for the whole batch from one
        draw (``s3rec_pretrain.draw``) that SAM's second pass replays."""
        sequence = left_align(item_seq, item_seq_len)
        pool = None if self.segment_pool is None else self.segment_pool.to(sequence.device)
        pool_size = None if pool is None else len(pool)
        draws = data_draw(self, lambda: draw(sequence, self.n_items, self.mask_ratio, self.mask_last, pool_size=pool_size))
        return build_inputs(sequence, draws, self.mask_token, pool)

    def finetune_bce_loss(self, interaction):
        """The reference's fine-tuning loss (S3Rec trainers.py:92-108): -log σ(pos) - log(1 - σ(neg)),
        one sampled negative per target, mean over targets; with ``train_scheme: sequence`` at
        every position of each user's training sequence (datasets.py:144-147), else at the last."""
        item_seq, item_seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        pos_items = interaction[self.POS_ITEM_ID]
        if self.train_scheme == "sequence":
            # Slots right of the longest sequence hold no target: drop them, as SASRec does (same draws).
            # The padded layout is encoded at full width: S3Rec's left window counts slots from the right.
            window, item_seq = item_seq, trim_padding(item_seq, item_seq_len)
            targets = next_items(item_seq, item_seq_len, pos_items)
            position = targets > 0
            negatives = data_draw(self, lambda: self.sample_negatives(item_seq, interaction[self.USER_ID]))[position]
            if self.pack_sequences:  # the real items' rows, row-major: the rows of hidden[position]
                hidden = self.encode_packed(item_seq, item_seq_len)
            else:
                hidden = self.forward(window, bidirectional=False)[:, : item_seq.size(1)][position]
            targets = targets[position]
        else:
            hidden, targets = self.finetune_hidden(item_seq, item_seq_len), pos_items
            negatives = interaction[self.NEG_ITEM_ID]
        pos_logits = (hidden * self.item_embedding(targets)).sum(-1)
        neg_logits = (hidden * self.item_embedding(negatives)).sum(-1)
        return -(F.logsigmoid(pos_logits) + F.logsigmoid(-neg_logits)).mean()

    def finetune_hidden(self, item_seq, item_seq_len):
        """The fine-tuned encoder's hidden state [B H] at each sequence's most recent item: packed
        (``CausalEncoder.last_hidden``) or in RecBole's padded layout."""
        if self.pack_sequences:
            return self.last_hidden(item_seq, item_seq_len)
        return self.gather_indexes(self.forward(item_seq, bidirectional=False), item_seq_len - 1)

    def predict(self, interaction):
        hidden = self.finetune_hidden(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return (hidden * self.item_embedding(interaction[self.ITEM_ID])).sum(dim=1)

    def full_sort_predict(self, interaction):
        hidden = self.finetune_hidden(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return hidden @ self.item_embedding.weight[: self.n_items - 1].T  # the mask token's row is no candidate

    def sample_negatives(self, item_seq, user_ids, rounds=5):
        """One uniform negative item per slot [B L], never the mask token (row ``n_items - 1``),
        as our SASRec's sampler (the reference's ``neg_sample(set(items))`` with ``neg_exclude:
        user``)."""
        if self.neg_exclude == "user":  # moved once, not at every draw of every batch
            self.user_item_keys = self.user_item_keys.to(item_seq.device)
        return sample_negatives(item_seq, user_ids, self.n_items - 1, self.neg_exclude, self.user_item_keys, rounds)
