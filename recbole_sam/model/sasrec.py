"""SASRec (Kang & McAuley, ICDM'18) with the loss and training scheme of the SAMRec paper.

SAMRec (Lai et al., RecSys'23, Eq. 2) trains SASRec with binary cross-entropy on each target
and one sampled negative, -log σ(r_pos) - log(1 - σ(r_neg)), summed over every position of
the user's sequence. RecBole's SASRec offers only CE (full softmax) and BPR on the last
position of each prefix. This subclass adds:

- ``loss_type: BCE``: the paper's loss, with one uniformly sampled negative per target;
- ``train_scheme: sequence``: the loss at every position of each training sequence (see
  ``recbole_sam.data.dataset``), for any of CE, BPR and BCE.

Padding columns beyond the longest sequence of a batch are cut off before encoding: RecBole
pads on the right and attention is causal and masked, so the result is the same, cheaper.
Prediction and evaluation are RecBole's.
"""

import torch
import torch.nn.functional as F
from recbole.model.sequential_recommender.sasrec import SASRec as RecBoleSASRec


def trim_padding(item_seq, item_seq_len):
    """Drop the all-padding columns on the right of a right-padded batch."""
    return item_seq[:, : max(int(item_seq_len.max()), 1)]


class SASRec(RecBoleSASRec):
    """RecBole's SASRec plus ``loss_type: BCE`` and ``train_scheme: sequence``."""

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

    def forward(self, item_seq, item_seq_len):
        return self.gather_indexes(self.encode(trim_padding(item_seq, item_seq_len)), item_seq_len - 1)

    def encode(self, item_seq):
        """Hidden states at every position, [B, L, H] (RecBole's forward keeps only the last)."""
        positions = torch.arange(item_seq.size(1), device=item_seq.device).unsqueeze(0).expand_as(item_seq)
        hidden = self.item_embedding(item_seq) + self.position_embedding(positions)
        hidden = self.dropout(self.LayerNorm(hidden))
        mask = self.get_attention_mask(item_seq)
        return self.trm_encoder(hidden, mask, output_all_encoded_layers=True)[-1]

    def calculate_loss(self, interaction):
        item_seq, item_seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        pos_items = interaction[self.POS_ITEM_ID]
        if self.train_scheme == "sequence":
            item_seq = trim_padding(item_seq, item_seq_len)
            hidden, targets = self.encode(item_seq), next_items(item_seq, item_seq_len, pos_items)
            position = targets > 0
            hidden, targets = hidden[position], targets[position]
            negatives = self.sample_negatives(item_seq, position) if self.loss_type != "CE" else None
        else:
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

    def sample_negatives(self, item_seq, position, rounds=5):
        """One uniform negative per training position, redrawn (a few rounds) while it is in the
        user's sequence, as in SASRec's sampler. Uses torch's global generator, which the SAM
        trainer replays so that both passes see the same negatives."""
        negatives = torch.randint(1, self.n_items, item_seq.shape, device=item_seq.device)
        for _ in range(rounds):
            seen = (negatives.unsqueeze(-1) == item_seq.unsqueeze(1)).any(-1)
            if not seen.any():
                break
            redraw = torch.randint(1, self.n_items, item_seq.shape, device=item_seq.device)
            negatives = torch.where(seen, redraw, negatives)
        return negatives[position]


def next_items(item_seq, item_seq_len, pos_items):
    """The target at every position: the next item in the sequence, and ``pos_items`` after the
    last one; 0 on padding. E.g. [a, b, c, 0], length 3, target d -> [b, c, d, 0]."""
    targets = torch.cat([item_seq[:, 1:], torch.zeros_like(item_seq[:, :1])], dim=1)
    targets[torch.arange(len(item_seq), device=item_seq.device), item_seq_len - 1] = pos_items
    return targets
