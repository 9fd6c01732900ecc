"""SASRec (Kang & McAuley, ICDM'18) with the loss and training scheme of the SAMRec paper.

SAMRec (Lai et al., RecSys'23, Eq. 2) trains SASRec with binary cross-entropy on each target
and one sampled negative, -log σ(r_pos) - log(1 - σ(r_neg)), at every position of the
user's sequence. RecBole's SASRec offers only CE (full softmax) and BPR on the last position
of each prefix. This subclass adds, each as a property (see properties/overall.yaml):

- ``loss_type: BCE``: the paper's loss, with one uniformly sampled negative per target;
- ``train_scheme: sequence``: the loss at every position of each training sequence (see
  ``recbole_sam.data.dataset``), for any of CE, BPR and BCE;
- ``pack_sequences``: with ``train_scheme: sequence``, the batch's sequences are packed end to
  end (``recbole_sam.model.packing``) instead of padded: the same loss, far fewer tokens;
- ``neg_exclude: user``: negatives avoid every item of the user, as the S3Rec code samples them;
- the padding and position corrections discussed for SASRec (S3Rec's left-padded window;
  ``../shared/seeds/002``): ``padding_side``, ``position_from_prediction``, ``zero_padding``,
  ``mask_padding_positions``. With all of them off the model is RecBole's SASRec.

Evaluation packs the users' sequences the same way. The feed-forward activation is torch's
fused GELU, the same function as RecBole's (erf form), about twice as fast on CPU.
"""

import torch
import torch.nn.functional as F
from recbole.model.sequential_recommender.sasrec import SASRec as RecBoleSASRec

from recbole_sam.errors import ConfigError
from recbole_sam.model.packing import pack
from recbole_sam.rng import data_draw

FUSED_ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu}


def trim_padding(item_seq, item_seq_len):
    """Drop the all-padding columns on the right of a right-padded batch."""
    return item_seq[:, : max(int(item_seq_len.max()), 1)]


class CausalEncoder:
    """SASRec's causal encoder, on a right-padded batch or packed, with its position switches: for
    every model whose encoder is SASRec's (SASRec, CL4SRec, S3Rec's fine-tuning). Needs RecBole's
    ``item_embedding``, ``position_embedding``, ``LayerNorm``, ``dropout``, ``trm_encoder`` and
    ``max_seq_length``, and the attributes ``padding_side``, ``position_from_prediction``,
    ``mask_padding_positions`` and ``pack_sequences``."""

    def _use_fused_activation(self, name):
        """torch's fused activation in the feed-forward layers: RecBole's function, faster."""
        fused = FUSED_ACTIVATIONS.get(name)
        if fused is not None:
            for layer in self.trm_encoder.layer:
                layer.feed_forward.intermediate_act_fn = fused

    def position_ids(self, item_seq, item_seq_len):
        """[B L] position ids of a right-padded batch.

        right (RecBole): 0 for the oldest item; left (S3Rec's window of MAX_ITEM_LIST_LENGTH
        slots): the most recent item always in the last slot; ``position_from_prediction``:
        0 for the most recent item, counting back. Padding slots get 0 in the last two.
        """
        steps = torch.arange(item_seq.size(1), device=item_seq.device).unsqueeze(0).expand_as(item_seq)
        if self.padding_side == "right" and not self.position_from_prediction:
            return steps
        length = item_seq_len.unsqueeze(1)
        if self.position_from_prediction:
            positions = length - 1 - steps
        else:
            positions = self.max_seq_length - length + steps
        return torch.where(steps < length, positions, torch.zeros_like(positions))

    def embed_layout(self, items, positions):
        """The encoder's input [R W H]: item plus position embeddings, layer norm, dropout."""
        position_embedding = self.position_embedding(positions)
        if self.mask_padding_positions:
            position_embedding = position_embedding * (items > 0).unsqueeze(-1)
        return self.dropout(self.LayerNorm(self.item_embedding(items) + position_embedding))

    def encode_layout(self, items, positions, attention_mask):
        """Hidden states [R W H] of item rows with their position ids and additive attention mask."""
        hidden = self.embed_layout(items, positions)
        return self.trm_encoder(hidden, attention_mask, output_all_encoded_layers=True)[-1]

    def encode(self, item_seq, item_seq_len):
        """Hidden states at every position of a right-padded batch, [B L H]."""
        positions = self.position_ids(item_seq, item_seq_len)
        return self.encode_layout(item_seq, positions, self.get_attention_mask(item_seq, bidirectional=False))

    def encode_packed(self, item_seq, item_seq_len):
        """Hidden states of every real item, [N H], row-major over the padded batch, computed
        on packed rows: equal to ``encode(...)[item_seq > 0]`` in eval mode."""
        batch = pack(item_seq, item_seq_len, self.position_ids(item_seq, item_seq_len), self.max_seq_length)
        return batch.unpack(self.encode_layout(batch.items, batch.positions, batch.attention_mask()))

    def last_hidden(self, item_seq, item_seq_len):
        """The hidden state [B H] at each sequence's most recent item."""
        item_seq = trim_padding(item_seq, item_seq_len)
        if self.pack_sequences:
            # The last item of sequence b is row offsets[b] + len[b] - 1 of the packed output.
            last = torch.cumsum(item_seq_len, 0) - 1
            return self.encode_packed(item_seq, item_seq_len)[last]
        return self.gather_indexes(self.encode(item_seq, item_seq_len), item_seq_len - 1)


class SASRec(CausalEncoder, RecBoleSASRec):
    """RecBole's SASRec plus the paper's loss and training scheme, packing and position switches."""

    LOSS_TYPES = ("CE", "BPR", "BCE")

    def __init__(self, config, dataset):
        loss_type = config["loss_type"]
        # RecBole's constructor refuses loss types it does not know. BCE needs the same inputs
        # as BPR (a sampled negative), so build the model as BPR and record the real choice.
        config["loss_type"] = "BPR" if loss_type == "BCE" else loss_type
        try:
            super().__init__(config, dataset)
        finally:
            config["loss_type"] = loss_type
        self.loss_type = loss_type
        self.train_scheme = config["train_scheme"] or "prefix"
        self.pack_sequences = bool(config["pack_sequences"])
        self.padding_side = config["padding_side"] or "right"
        self.position_from_prediction = bool(config["position_from_prediction"])
        self.zero_padding = bool(config["zero_padding"])
        self.mask_padding_positions = bool(config["mask_padding_positions"])
        self.neg_exclude = config["neg_exclude"] or "input"
        self.user_item_keys = getattr(dataset, "user_item_keys", None)  # sorted user * n_items + item
        if self.neg_exclude == "user" and self.user_item_keys is None:
            raise ConfigError("neg_exclude: user needs the dataset of recbole_sam.data.dataset.create_dataset (it knows every item of each user)")
        self._use_fused_activation(config["hidden_act"])
        self.zero_padding_row()

    def zero_padding_row(self):
        """With ``zero_padding``, set the padding item's embedding to zero. It stays zero: its
        gradient is zero (``padding_idx``), so neither Adam nor SAM's ascent moves it."""
        if self.zero_padding:
            with torch.no_grad():
                self.item_embedding.weight[0].zero_()

    def forward(self, item_seq, item_seq_len):
        return self.last_hidden(item_seq, item_seq_len)

    # -- training loss ----------------------------------------------------------------------

    def calculate_loss(self, interaction):
        item_seq, item_seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        pos_items = interaction[self.POS_ITEM_ID]
        if self.train_scheme == "sequence":
            item_seq = trim_padding(item_seq, item_seq_len)
            targets = next_items(item_seq, item_seq_len, pos_items)
            position = targets > 0
            # Negatives are drawn in the padded layout either way, so packing changes no draw.
            negatives = None
            if self.loss_type != "CE":
                negatives = data_draw(self, lambda: self.sample_negatives(item_seq, interaction[self.USER_ID]))[position]
            if self.pack_sequences:
                hidden = self.encode_packed(item_seq, item_seq_len)
            else:
                hidden = self.encode(item_seq, item_seq_len)[position]
            return self.loss_from_scores(hidden, targets[position], negatives)
        hidden, targets = self.forward(item_seq, item_seq_len), pos_items
        negatives = interaction[self.NEG_ITEM_ID] if self.loss_type != "CE" else None
        return self.loss_from_scores(hidden, targets, negatives)

    def loss_from_scores(self, hidden, targets, negatives):
        """The ``loss_type`` loss for hidden states [N, H], target items [N] and negatives [N]."""
        if self.loss_type == "CE":
            return F.cross_entropy(hidden @ self.item_embedding.weight.T, targets)
        pos_logits = (hidden * self.item_embedding(targets)).sum(-1)
        neg_logits = (hidden * self.item_embedding(negatives)).sum(-1)
        if self.loss_type == "BPR":
            return self.loss_fct(pos_logits, neg_logits)
        # log σ(x) and log(1 - σ(x)) = log σ(-x), in their numerically stable form
        return -(F.logsigmoid(pos_logits) + F.logsigmoid(-neg_logits)).mean()

    def sample_negatives(self, item_seq, user_ids, rounds=5):
        """One uniform negative per slot of ``item_seq`` [B L], never a known item of the user (see
        the module function ``sample_negatives``; ``neg_exclude``: input, SASRec's sampler, or
        user, S3Rec's). Uses torch's global generator, which the SAM trainer replays."""
        if self.neg_exclude == "user":  # moved once, not at every draw of every batch
            self.user_item_keys = self.user_item_keys.to(item_seq.device)
        return sample_negatives(item_seq, user_ids, self.n_items, self.neg_exclude, self.user_item_keys, rounds)


def sample_negatives(item_seq, user_ids, item_count, neg_exclude, user_item_keys=None, rounds=5):
    """One uniform negative item in 1 .. item_count - 1 per slot of ``item_seq`` [B L], redrawn (a
    few rounds) while it is a known item of the user: in the input sequence (``neg_exclude:
    input``) or anywhere in the user's data, valid and test included (``user``; ``user_item_keys``
    sorted ``user * item_count + item``)."""
    negatives = torch.randint(1, item_count, item_seq.shape, device=item_seq.device)
    for _ in range(rounds):
        if neg_exclude == "user":
            keys = user_ids.unsqueeze(1) * item_count + negatives
            # a binary search in the sorted keys, not isin's sort of both tensors at every draw
            found = torch.searchsorted(user_item_keys, keys).clamp(max=len(user_item_keys) - 1)
            seen = user_item_keys[found] == keys
        else:
            seen = (negatives.unsqueeze(-1) == item_seq.unsqueeze(1)).any(-1)
        if not seen.any():
            break
        negatives = torch.where(seen, torch.randint(1, item_count, item_seq.shape, device=item_seq.device), negatives)
    return negatives


def next_items(item_seq, item_seq_len, pos_items):
    """The target at every position: the next item in the sequence, and ``pos_items`` after the
    last one; 0 on padding. E.g. [a, b, c, 0], length 3, target d -> [b, c, d, 0]."""
    targets = torch.cat([item_seq[:, 1:], torch.zeros_like(item_seq[:, :1])], dim=1)
    targets[torch.arange(len(item_seq), device=item_seq.device), item_seq_len - 1] = pos_items
    return targets
