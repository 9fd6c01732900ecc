"""CL4SRec (Xie et al., "Contrastive Learning for Sequential Recommendation", ICDE'22).

A SASRec encoder trained with the next-item loss plus λ · InfoNCE between two augmented views
of every sequence in the batch (Eq. 9: L = L_main + λ L_cl). Each view comes from one of three
operators (Sec. IV-B): item crop (keep a random contiguous ⌊η·n⌋ items), item mask (replace
⌊γ·n⌋ random items by a mask token) and item reorder (shuffle a random contiguous block of
⌊β·n⌋ items). The two views of a sequence use two different operators.

The operators below take RecBole's right-padded batches (items, then zeros; ``item_seq_len``
gives n), return new tensors in the same layout with their lengths, and draw only from torch's
global generator, so the SAM trainer's ``RandomDraws`` replays the same views in both passes
(and ``data_draw`` keeps them under ``fresh_dropout``).

Either training scheme works: ``prefix`` (RecBole's, the RecBole-based CL4SRec lineage) and
``sequence`` (one sample per user, next-item loss at every position, views of the training
sequence: ICLRec's InstanceCL, the paper setting; docs/paper_setting.md, section CL4SRec). With
``pack_sequences`` and ``cl_fast_path`` one packed encoder pass serves the next-item loss and both
views (``packed_loss``); otherwise the padded three-pass path, the reference it equals in eval mode.
"""

import torch
import torch.nn.functional as F
from torch import nn

from recbole_sam.errors import ConfigError
from recbole_sam.model.packing import layer_at_slots, pack
from recbole_sam.model.sasrec import SASRec, next_items, trim_padding
from recbole_sam.rng import data_draw

SIMILARITIES = ("dot", "cosine")


def _count(item_seq_len, fraction):
    # ⌊fraction·n⌋ in double precision, as Python's math.floor(fraction * n) computes it.
    return torch.floor(item_seq_len.double() * fraction).long()


def _positions(item_seq):
    return torch.arange(item_seq.size(1), device=item_seq.device).unsqueeze(0)  # [1 L]


def _random_start(item_seq_len, block_len):
    """A uniform start in [0, n - block_len] per sequence."""
    room = (item_seq_len - block_len + 1).clamp(min=1)
    return (torch.rand(item_seq_len.shape, device=item_seq_len.device) * room).long().clamp(max=room - 1)


def crop(item_seq, item_seq_len, eta):
    """Keep a random contiguous sub-sequence of max(1, ⌊η·n⌋) items, moved to the front.

    Args:
        item_seq (torch.LongTensor): [B L] right-padded item ids.
        item_seq_len (torch.LongTensor): [B] lengths n.
        eta (float): fraction of the items to keep.

    Returns:
        tuple: the cropped sequences [B L] (right-padded) and their lengths [B].
    """
    new_len = _count(item_seq_len, eta).clamp(min=1).minimum(item_seq_len)
    start = _random_start(item_seq_len, new_len)
    positions = _positions(item_seq)
    source = (start.unsqueeze(1) + positions).clamp(max=item_seq.size(1) - 1)
    kept = positions < new_len.unsqueeze(1)
    return torch.where(kept, item_seq.gather(1, source), torch.zeros_like(item_seq)), new_len


def mask(item_seq, item_seq_len, gamma, mask_token):
    """Replace ⌊γ·n⌋ items, chosen uniformly without replacement, by ``mask_token``.

    Args:
        item_seq (torch.LongTensor): [B L] right-padded item ids.
        item_seq_len (torch.LongTensor): [B] lengths n.
        gamma (float): fraction of the items to mask.
        mask_token (int): the id that replaces them.

    Returns:
        tuple: the masked sequences [B L] and their (unchanged) lengths [B].
    """
    is_item = _positions(item_seq) < item_seq_len.unsqueeze(1)
    # Padding gets a key above every uniform draw, so it ranks after all items and is never picked.
    keys = torch.rand(item_seq.shape, device=item_seq.device).masked_fill(~is_item, 2.0)
    rank = keys.argsort(dim=1).argsort(dim=1)
    picked = rank < _count(item_seq_len, gamma).unsqueeze(1)
    return item_seq.masked_fill(picked, mask_token), item_seq_len.clone()


def reorder(item_seq, item_seq_len, beta):
    """Shuffle a random contiguous block of ⌊β·n⌋ items; everything else stays in place.

    Args:
        item_seq (torch.LongTensor): [B L] right-padded item ids.
        item_seq_len (torch.LongTensor): [B] lengths n.
        beta (float): fraction of the items in the block.

    Returns:
        tuple: the reordered sequences [B L] and their (unchanged) lengths [B].
    """
    block_len = _count(item_seq_len, beta)
    start = _random_start(item_seq_len, block_len).unsqueeze(1)
    positions = _positions(item_seq)
    in_block = (positions >= start) & (positions < start + block_len.unsqueeze(1))
    # Sort by position, with the whole block tied at its start and the ties broken at random:
    # the block's items are permuted among themselves and no other item moves.
    tie_break = 0.5 * torch.rand(item_seq.shape, device=item_seq.device, dtype=torch.float64)
    keys = torch.where(in_block, start.double() + tie_break, positions.double().expand_as(tie_break))
    return item_seq.gather(1, keys.argsort(dim=1, stable=True)), item_seq_len.clone()


def augment_pair(item_seq, item_seq_len, operators):
    """Two views of each sequence, made by two different operators drawn uniformly at random.

    Each operator runs once on the whole batch; since a sequence's two operators differ, no
    operator output is used twice for the same sequence. Sequences of length 1 are kept as is.

    Args:
        item_seq (torch.LongTensor): [B L] right-padded item ids.
        item_seq_len (torch.LongTensor): [B] lengths.
        operators (list): k >= 2 functions ``(item_seq, item_seq_len) -> (seq, len)``.

    Returns:
        tuple: ``(seq1, len1, seq2, len2, op1, op2)``; ``op1``/``op2`` [B] index ``operators``.
    """
    batch, k = item_seq.size(0), len(operators)
    op1 = torch.randint(k, (batch,), device=item_seq.device)
    op2 = (op1 + torch.randint(1, k, (batch,), device=item_seq.device)) % k  # uniform over the others
    outputs = [operator(item_seq, item_seq_len) for operator in operators]
    seqs, lens = torch.stack([s for s, _ in outputs]), torch.stack([n for _, n in outputs])  # [k B L], [k B]
    rows = torch.arange(batch, device=item_seq.device)
    keep = item_seq_len <= 1
    views = []
    for op in (op1, op2):
        views.append(torch.where(keep.unsqueeze(1), item_seq, seqs[op, rows]))
        views.append(torch.where(keep, item_seq_len, lens[op, rows]))
    return (*views, op1, op2)


def info_nce(z1, z2, temperature, similarity="dot"):
    """NT-Xent: each of the 2N views must pick its partner among the other 2N-1 views.

    Args:
        z1 (torch.Tensor): [N H] first views.
        z2 (torch.Tensor): [N H] second views; row i pairs with z1's row i.
        temperature (float): τ > 0, divides the similarities.
        similarity (str): ``dot`` or ``cosine``.

    Returns:
        torch.Tensor: the mean loss over the 2N anchors (a scalar).
    """
    z = torch.cat([z1, z2])
    if similarity == "cosine":
        z = F.normalize(z, dim=1)
    self_pair = torch.eye(z.size(0), dtype=torch.bool, device=z.device)
    logits = (z @ z.T / temperature).masked_fill(self_pair, float("-inf"))  # a view is not its own negative
    n = z1.size(0)
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, partner)


class UniformDropout(nn.Dropout):
    """``nn.Dropout`` whose keep mask compares uniform draws with p: the same masks in
    distribution, two to three times faster on CPU than the ``bernoulli_`` draw torch uses.
    On a GPU, torch's fused dropout."""

    def forward(self, x):
        if not self.training or self.p in (0, 1) or x.is_cuda:
            return super().forward(x)
        scale = (torch.rand_like(x) >= self.p).to(x.dtype).mul_(1.0 / (1.0 - self.p))
        return x * scale


def use_uniform_dropout(model):
    """Replace every ``nn.Dropout`` of ``model`` by a ``UniformDropout`` of the same p."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if type(child) is nn.Dropout:
                setattr(parent, name, UniformDropout(child.p))


def check_options(config):
    """Raise ``ConfigError`` for a bad CL4SRec option (augmentation fractions, temperature, weight, similarity)."""
    def fraction(key, low_open):
        value = config[key]
        ok = isinstance(value, (int, float)) and (0 < value <= 1 if low_open else 0 <= value <= 1)
        if not ok:
            raise ConfigError(f"{key}: must be a number in {'(0, 1]' if low_open else '[0, 1]'}, got {value!r}")

    fraction("crop_eta", low_open=True)
    fraction("mask_gamma", low_open=False)
    fraction("reorder_beta", low_open=False)
    if not (isinstance(config["cl_temperature"], (int, float)) and config["cl_temperature"] > 0):
        raise ConfigError(f"cl_temperature: must be a number > 0, got {config['cl_temperature']!r}")
    if not (isinstance(config["cl_weight"], (int, float)) and config["cl_weight"] >= 0):
        raise ConfigError(f"cl_weight: must be a number >= 0, got {config['cl_weight']!r}")
    if config["cl_similarity"] not in SIMILARITIES:
        raise ConfigError(f"cl_similarity: {config['cl_similarity']!r} is not one of {', '.join(SIMILARITIES)}")
    if config["cl_fast_path"] not in (True, False):
        raise ConfigError(f"cl_fast_path: must be True or False, got {config['cl_fast_path']!r}")


class CL4SRec(SASRec):
    """Our SASRec (CE, BPR or BCE next-item loss, either train_scheme) plus CL4SRec's contrastive loss.

    The item embedding has one extra row, id ``n_items``: the mask token. It is never a
    candidate: the CE logits and ``full_sort_predict`` score rows 0..n_items-1 only.
    """

    def __init__(self, config, dataset):
        check_options(config)
        super().__init__(config, dataset)
        self.cl_weight = config["cl_weight"]
        self.cl_temperature = config["cl_temperature"]
        self.cl_similarity = config["cl_similarity"]
        self.crop_eta, self.mask_gamma, self.reorder_beta = config["crop_eta"], config["mask_gamma"], config["reorder_beta"]
        # The fast path needs packing: without it the padded path below is the reference.
        self.fast_path = config["cl_fast_path"] and self.pack_sequences
        if self.fast_path:
            use_uniform_dropout(self)
        self.mask_token = self.n_items
        self.item_embedding = nn.Embedding(self.n_items + 1, self.hidden_size, padding_idx=0)
        self._init_weights(self.item_embedding)
        self.zero_padding_row()

    def _candidate_embeddings(self):
        return self.item_embedding.weight[: self.n_items]  # the mask token's row is no candidate

    def _operators(self):
        return [
            lambda s, n: crop(s, n, self.crop_eta),
            lambda s, n: mask(s, n, self.mask_gamma, self.mask_token),
            lambda s, n: reorder(s, n, self.reorder_beta),
        ]

    def loss_from_scores(self, hidden, targets, negatives):
        if self.loss_type == "CE":
            return F.cross_entropy(hidden @ self._candidate_embeddings().T, targets)
        return super().loss_from_scores(hidden, targets, negatives)

    def next_item_loss(self, interaction):
        """SASRec's loss for ``loss_type`` and ``train_scheme``, with CE over the real items only."""
        return super().calculate_loss(interaction)

    def draw_views(self, interaction):
        """Two augmented views of each sequence of the batch, drawn once per batch (SAM's two
        passes reuse them under ``replay`` and ``fresh_dropout``): ``(seq1, len1, seq2, len2)``."""
        item_seq, item_seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        return data_draw(self, lambda: augment_pair(item_seq, item_seq_len, self._operators()))[:4]

    def contrastive_loss(self, interaction):
        """InfoNCE between two augmented views of each sequence (the batch is left untouched)."""
        seq1, len1, seq2, len2 = self.draw_views(interaction)
        return info_nce(self.forward(seq1, len1), self.forward(seq2, len2), self.cl_temperature, self.cl_similarity)

    def calculate_loss(self, interaction):
        if self.fast_path:
            return self.packed_loss(interaction)
        loss = self.next_item_loss(interaction)
        if self.cl_weight > 0:
            loss = loss + self.cl_weight * self.contrastive_loss(interaction)
        return loss

    # -- one packed pass for the next-item loss and both views ---------------------------------

    def packed_loss(self, interaction):
        """``next_item_loss + cl_weight * contrastive_loss`` from one packed encoder pass over the
        batch's sequences and both views, the last layer evaluated only where a loss reads it
        (every position of the sequences in the sequence scheme, else each sequence's last item).
        Same draws as the padded path (negatives, then views), so equal to it in eval mode."""
        item_seq, item_seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        every_position = self.train_scheme == "sequence"
        targets, negatives = self._next_item_targets(interaction, every_position)
        sequences, lengths = [item_seq], [item_seq_len]
        if self.cl_weight > 0:
            seq1, len1, seq2, len2 = self.draw_views(interaction)
            sequences += [seq1, seq2]
            lengths += [len1, len2]
        all_len = torch.cat(lengths)
        last_only = torch.ones_like(all_len, dtype=torch.bool)
        last_only[: len(item_seq)] = not every_position
        hidden = self.encode_packed_at(trim_padding(torch.cat(sequences), all_len), all_len, last_only)
        n_next = len(targets)
        loss = self.loss_from_scores(hidden[:n_next], targets, negatives)
        if self.cl_weight > 0:
            z1, z2 = hidden[n_next:].chunk(2)
            loss = loss + self.cl_weight * info_nce(z1, z2, self.cl_temperature, self.cl_similarity)
        return loss

    def _next_item_targets(self, interaction, every_position):
        """Targets [N] and negatives [N] (None for CE) of the next-item loss, drawn as SASRec draws them."""
        item_seq, item_seq_len = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        pos_items = interaction[self.POS_ITEM_ID]
        if not every_position:
            return pos_items, interaction[self.NEG_ITEM_ID] if self.loss_type != "CE" else None
        item_seq = trim_padding(item_seq, item_seq_len)
        targets = next_items(item_seq, item_seq_len, pos_items)
        position = targets > 0
        negatives = None
        if self.loss_type != "CE":
            negatives = data_draw(self, lambda: self.sample_negatives(item_seq, interaction[self.USER_ID]))[position]
        return targets[position], negatives

    def encode_packed_at(self, item_seq, item_seq_len, last_only):
        """Hidden states from one packed pass: of every item of the sequences where ``last_only``
        is False, of the last item of the others; [M H], row-major over the padded batch.

        Args:
            item_seq (torch.LongTensor): [B L] right-padded item ids.
            item_seq_len (torch.LongTensor): [B] lengths, each >= 1.
            last_only (torch.BoolTensor): [B] whether only the sequence's last hidden state is needed.

        Returns:
            torch.Tensor: [M H] the wanted hidden states.
        """
        batch = pack(item_seq, item_seq_len, self.position_ids(item_seq, item_seq_len), self.max_seq_length)
        attention_mask = batch.attention_mask()
        hidden = self.embed_layout(batch.items, batch.positions)
        *first_layers, last_layer = self.trm_encoder.layer
        for layer in first_layers:
            hidden = layer(hidden, attention_mask)
        steps = torch.arange(item_seq.size(1), device=item_seq.device).unsqueeze(0)
        real = steps < item_seq_len.unsqueeze(1)
        wanted = real & ~(last_only.unsqueeze(1) & (steps != item_seq_len.unsqueeze(1) - 1))
        return layer_at_slots(last_layer, hidden, attention_mask, batch.slots[wanted[real]])

    def full_sort_predict(self, interaction):
        seq_output = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return seq_output @ self._candidate_embeddings().T  # [B n_items]
