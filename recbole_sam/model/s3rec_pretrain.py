"""S3Rec's pre-training inputs built with tensor operations for the whole batch.

RecBole's ``S3Rec.reconstruct_pretrain_data`` builds them per sequence and per position in
Python: the masked-item sequences, the segments and their negatives, and a multi-hot attribute
list of every attribute at every one of the 50 slots (50 x 637 Python ints per sample on Beauty).
Here the same inputs come from one draw per batch (``PretrainDraws``: which items are masked,
their negatives, each segment's length and start, each negative segment's start) and a few
tensor operations. The definitions are RecBole's (and the reference's, RUCAIBox/CIKM2020-S3Rec
datasets.py:27-82, except where docs/paper_setting.md says otherwise): given the same draws,
``build_inputs`` returns exactly what RecBole's loop returns (tests/test_s3rec_pretrain.py).
"""

from dataclasses import dataclass

import torch

from recbole_sam.model.packing import MASKED, layer_at_slots, pack


@dataclass
class PretrainDraws:
    """The random choices of one pre-training batch (rows are left-padded sequences [B L])."""

    masked: torch.Tensor  # [B L] bool: the item is replaced by the mask token (MIP, MAP)
    negatives: torch.Tensor  # [B L] a negative item for every slot (read where masked)
    segment_length: torch.Tensor  # [B] in 1 .. len // 2 (rows shorter than 2 have no segment)
    segment_start: torch.Tensor  # [B] in 0 .. len - segment_length
    negative_start: torch.Tensor  # [B] the negative segment's start in the pool (``build_inputs``)


def left_align(item_seq, item_seq_len):
    """A right-padded batch [B L] as RecBole's pre-training lays it out: padded on the left."""
    width = item_seq.size(1)
    slots = torch.arange(width, device=item_seq.device).unsqueeze(0)
    return item_seq.gather(1, (slots + item_seq_len.unsqueeze(1)) % width)


def _uniform_int(low, high):
    """A uniform integer in [low, high] (inclusive), elementwise, from torch's global generator."""
    return low + (torch.rand(low.shape, device=low.device) * (high - low + 1)).long().clamp(max=high - low)


def draw(sequence, n_items, mask_ratio, mask_last=False, rounds=10, pool_size=None):
    """The draws of one batch of left-padded sequences [B L], with torch's global generator.
    ``mask_last``: the most recent item is always masked, as the reference does
    (datasets.py:44-46); RecBole masks it with ``mask_ratio`` like the others. ``pool_size``:
    the length of the items negative segments are cut from (default: the batch's items end to
    end, as RecBole; all users' sequences, as the reference: ``build_inputs``'s ``pool``).

    Negatives are uniform in 1 .. n_items - 1 (RecBole's ``_neg_sample``, the mask token included as
    in the reference's ``neg_sample``), redrawn while they are an item of their own sequence
    (``rounds`` times at most; RecBole redraws until they are not).
    """
    real = sequence > 0
    lengths = real.sum(1)
    masked = (torch.rand(sequence.shape, device=sequence.device) < mask_ratio) & real
    if mask_last:
        masked[:, -1] = True  # left-padded: the last slot is every row's most recent item
    negatives = torch.randint(1, n_items, sequence.shape, device=sequence.device)
    for _ in range(rounds):
        seen = (negatives.unsqueeze(-1) == sequence.unsqueeze(1)).any(-1) & masked
        if not seen.any():
            break
        negatives = torch.where(seen, torch.randint(1, n_items, sequence.shape, device=sequence.device), negatives)
    one = torch.ones_like(lengths)
    segment_length = _uniform_int(one, torch.maximum(lengths // 2, one))
    segment_start = _uniform_int(torch.zeros_like(lengths), lengths - segment_length)
    pool_size = lengths.sum() if pool_size is None else torch.tensor(pool_size, device=lengths.device)
    negative_start = _uniform_int(torch.zeros_like(lengths), pool_size - segment_length)
    return PretrainDraws(masked, negatives, segment_length, segment_start, negative_start)


def build_inputs(sequence, draws, mask_token, pool=None):
    """RecBole's six pre-training sequences [B L] from left-padded ``sequence`` and ``draws``:
    masked items, positive and negative items (MIP); the segment-masked sequence and the positive
    and negative segments, mask tokens elsewhere (SP). As ``S3Rec.reconstruct_pretrain_data``.
    Negative segments are cut from ``pool`` [P], items end to end (default: the batch's
    sequences, RecBole's ``long_sequence``; the reference cuts them from all users' sequences,
    utils.py:153-166, datasets.py:56-58)."""
    real = sequence > 0
    lengths = real.sum(1, keepdim=True)
    masked = draws.masked & real
    masked_items = torch.where(masked, torch.full_like(sequence, mask_token), sequence)
    negative_items = torch.where(masked, draws.negatives, sequence)
    # Segments: k is the item's index in its own sequence; rows shorter than 2 stay as they are.
    k = torch.arange(sequence.size(1), device=sequence.device).unsqueeze(0) - (sequence.size(1) - lengths)
    start, length = draws.segment_start.unsqueeze(1), draws.segment_length.unsqueeze(1)
    in_segment = real & (k >= start) & (k < start + length) & (lengths >= 2)
    outside = torch.where(real & (lengths >= 2), torch.full_like(sequence, mask_token), sequence)
    concatenated = sequence[real] if pool is None else pool
    source = (draws.negative_start.unsqueeze(1) + k - start).clamp(0, max(len(concatenated) - 1, 0))
    masked_segment = torch.where(in_segment, torch.full_like(sequence, mask_token), sequence)
    positive_segment = torch.where(in_segment, sequence, outside)
    negative_segment = torch.where(in_segment, concatenated[source], outside)
    return masked_items, sequence, negative_items, masked_segment, positive_segment, negative_segment


def attribute_table(item_attributes, n_features):
    """[n_items, n_features] multi-hot attributes of every item from RecBole's item feature
    (token ids, 0 = padding; a token_seq field [n_items, K] or a token field [n_items]).
    RecBole keeps no padding attribute: token id t is column t - 1."""
    tokens = item_attributes.long()
    tokens = tokens.unsqueeze(1) if tokens.dim() == 1 else tokens
    table = torch.zeros(len(tokens), n_features + 1)
    table.scatter_(1, tokens, 1.0)
    table = table[:, 1:]
    table[0] = 0  # the padding item has no attributes
    return table


def _right_aligned(sequences):
    """Left-padded rows [N L] -> right-padded rows, lengths, and each slot's left-padded position id."""
    width = sequences.size(1)
    lengths = (sequences > 0).sum(1)
    slots = torch.arange(width, device=sequences.device).unsqueeze(0)
    right = sequences.gather(1, (slots + (width - lengths).unsqueeze(1)) % width)
    positions = slots + (width - lengths).unsqueeze(1)  # the slot each item has in the left-padded row
    return right, lengths, torch.where(slots < lengths.unsqueeze(1), positions, torch.zeros_like(positions))


def bidirectional_mask(batch):
    """[R 1 W W] additive mask of a packed batch: a query sees every key of its own sequence
    (S3Rec's pre-training encoder is not causal)."""
    allowed = (batch.segments.unsqueeze(2) == batch.segments.unsqueeze(1)) & (batch.segments > 0).unsqueeze(1)
    return torch.where(allowed, torch.zeros((), device=allowed.device), torch.tensor(MASKED, device=allowed.device)).unsqueeze(1)


def encode_packed(model, sequences, wanted):
    """Hidden states of left-padded rows [N L] (positions = their left-padded slots, as RecBole's
    ``S3Rec.forward``), packed end to end with a bidirectional block-diagonal mask. The last layer
    runs only where a loss reads it.

    Args:
        model: the S3Rec model (its embeddings, LayerNorm, dropout and encoder are used).
        sequences (torch.LongTensor): [N L] left-padded rows.
        wanted (torch.BoolTensor): [N L] the slots whose hidden state is needed (real items).

    Returns:
        torch.Tensor: [M H] the hidden states at ``wanted``, row-major.
    """
    right, lengths, positions = _right_aligned(sequences)
    batch = pack(right, lengths, positions, sequences.size(1))
    hidden = model.dropout(model.LayerNorm(model.item_embedding(batch.items) + model.position_embedding(batch.positions)))
    mask = bidirectional_mask(batch)
    for layer in model.trm_encoder.layer[:-1]:
        hidden = layer(hidden, mask)
    # wanted slots, in the right-padded layout, and where they sit in the packed rows
    slots = torch.arange(sequences.size(1), device=sequences.device).unsqueeze(0)
    wanted_right = wanted.gather(1, (slots + (sequences.size(1) - lengths).unsqueeze(1)) % sequences.size(1))
    real = slots < lengths.unsqueeze(1)
    order = torch.zeros_like(sequences)
    order[real] = torch.arange(int(real.sum()), device=sequences.device)
    return layer_at_slots(model.trm_encoder.layer[-1], hidden, mask, batch.slots[order[wanted_right & real]])


def pretrain_loss(model, attributes, inputs):
    """RecBole's ``S3Rec.pretrain`` loss (the four weighted sums: AAP, MIP, MAP, SP) from the same
    inputs, with one packed encoder pass over the masked-item sequences and the three segment
    sequences, and each score computed only where its loss counts it (RecBole multiplies the
    others by 0). Equal to RecBole's in eval mode, to float tolerance.

    Args:
        model: the S3Rec model.
        attributes (torch.Tensor): [items F] multi-hot attributes of every item (``attribute_table``).
        inputs (tuple): masked items, positive items, negative items, masked segment, positive
            segment, negative segment, each [B L] left-padded (``build_inputs``).
    """
    masked_items, positives, negatives, masked_segment, positive_segment, negative_segment = inputs
    rows, width = masked_items.shape
    real = masked_items > 0
    last = torch.zeros_like(real)
    last[:, -1] = True  # SP reads the last slot of each segment sequence (models.py:139-157)
    sequences = torch.cat([masked_items, masked_segment, positive_segment, negative_segment])
    hidden = encode_packed(model, sequences, torch.cat([real, last, last, last]))
    n_real = int(real.sum())
    items_hidden, segment_hidden = hidden[:n_real], hidden[n_real:].view(3, rows, -1)

    is_masked = masked_items[real] == model.mask_token
    features, feature_embedding = attributes[positives[real]], model.feature_embedding.weight
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    # AAP: the attributes of every unmasked item, from its own hidden state
    kept = ~is_masked
    aap_scores = model.aap_norm(items_hidden[kept]) @ feature_embedding.T
    aap = bce(aap_scores, features[kept], reduction="sum")
    # MIP: sigmoid scores of the positive and the negative item at each masked slot
    at_mask = items_hidden[is_masked]
    projected = model.mip_norm(at_mask)
    pos_score = torch.sigmoid((projected * model.item_embedding(positives[real][is_masked])).sum(-1))
    neg_score = torch.sigmoid((projected * model.item_embedding(negatives[real][is_masked])).sum(-1))
    mip = bce(pos_score - neg_score, torch.ones_like(pos_score), reduction="sum")
    # MAP: the masked item's attributes
    map_scores = model.map_norm(at_mask) @ feature_embedding.T
    map_ = bce(map_scores, features[is_masked], reduction="sum")
    # SP: the context against the positive and the negative segment
    context = model.sp_norm(segment_hidden[0])
    pos_segment = torch.sigmoid((context * segment_hidden[1]).sum(-1))
    neg_segment = torch.sigmoid((context * segment_hidden[2]).sum(-1))
    sp = bce(pos_segment - neg_segment, torch.ones_like(pos_segment), reduction="sum")
    return model.aap_weight * aap + model.mip_weight * mip + model.map_weight * map_ + model.sp_weight * sp
