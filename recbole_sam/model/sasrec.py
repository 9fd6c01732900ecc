"""SASRec (Kang & McAuley, ICDM'18) with the loss the SAMRec paper trains it with.

SAMRec (Lai et al., RecSys'23, Eq. 2) trains SASRec with binary cross-entropy on each target
and one sampled negative: -log σ(r_pos) - log(1 - σ(r_neg)). RecBole's SASRec offers only CE
(full softmax) and BPR; this subclass adds ``loss_type: BCE`` and is otherwise RecBole's model.
"""

import torch.nn.functional as F
from recbole.model.sequential_recommender.sasrec import SASRec as RecBoleSASRec


class SASRec(RecBoleSASRec):
    """RecBole's SASRec plus ``loss_type: BCE`` (one uniformly sampled negative per target)."""

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

    def calculate_loss(self, interaction):
        if self.loss_type != "BCE":
            return super().calculate_loss(interaction)
        seq_output = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        pos_emb = self.item_embedding(interaction[self.POS_ITEM_ID])
        neg_emb = self.item_embedding(interaction[self.NEG_ITEM_ID])
        pos_logits = (seq_output * pos_emb).sum(dim=-1)
        neg_logits = (seq_output * neg_emb).sum(dim=-1)
        # log σ(x) and log(1 - σ(x)) = log σ(-x), in their numerically stable form
        return -(F.logsigmoid(pos_logits) + F.logsigmoid(-neg_logits)).mean()
