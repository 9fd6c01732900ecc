"""Padding-free batches: a batch's sequences laid end to end in rows of fixed width. Torch only.

Beauty's training sequences average 8.9 items, but a batch of them padded to its longest
sequence (usually 50) is ~80% padding, which the Transformer processes like any other token.
Packing puts several sequences in one row (first-fit, in batch order) and gives the encoder
a block-diagonal causal attention mask, so that no item attends to another sequence: in eval
mode every sequence's hidden states are those of the padded layout, to float tolerance.
Position ids travel with the items, so each sequence keeps its own.

    sequences [a b c], [d], [e f]; width 4  ->  row 0: a b c d   row 1: e f . .
    segments                                ->         1 1 1 2          3 3 0 0
"""

from dataclasses import dataclass

import numpy as np
import torch

# RecBole's attention masks add this to the scores of keys a query may not see.
MASKED = -10000.0


@dataclass
class PackedBatch:
    """A packed batch and the way back to the padded layout.

    Attributes:
        items (torch.LongTensor): [R W] item ids, 0 on padding.
        positions (torch.LongTensor): [R W] position ids, each sequence's own.
        segments (torch.LongTensor): [R W] which sequence a slot holds (1-based batch index), 0 on padding.
        slots (torch.LongTensor): [N] for every real item of the padded batch, in row-major order
            (sequence by sequence, oldest first), its slot in ``items.view(-1)``.
    """

    items: torch.Tensor
    positions: torch.Tensor
    segments: torch.Tensor
    slots: torch.Tensor

    def attention_mask(self):
        """[R 1 W W] additive mask: a query sees the keys of its own sequence up to itself."""
        same = self.segments.unsqueeze(2) == self.segments.unsqueeze(1)  # [R W W]
        causal = torch.ones(same.shape[-2:], dtype=torch.bool, device=same.device).tril()
        allowed = same & causal & (self.segments > 0).unsqueeze(1)
        zero = torch.zeros((), device=allowed.device)
        return torch.where(allowed, zero, torch.tensor(MASKED, device=allowed.device)).unsqueeze(1)

    def unpack(self, hidden):
        """[R W H] hidden states of the packed rows -> [N H], one per real item, in row-major
        order of the padded batch (what ``padded_hidden[item_seq > 0]`` would give)."""
        return hidden.reshape(-1, hidden.size(-1))[self.slots]


def first_fit_rows(lengths, width):
    """Row and offset of each sequence when sequences are placed, in order, into the first row
    with room for them (a new row when none has).

    Args:
        lengths (numpy.ndarray): [B] sequence lengths, each in 1..width.
        width (int): slots per row.

    Returns:
        tuple: ``(row, offset)`` arrays [B], and the number of rows.
    """
    # Plain Python ints: a few microseconds per sequence, where a NumPy call per sequence cost tens.
    fill, rows, offsets = [], [], []  # fill: slots used in each row so far
    first_open = 0  # every row before it is full, so no scan starts earlier
    for length in np.asarray(lengths).tolist():
        r = first_open
        while r < len(fill) and fill[r] + length > width:
            r += 1
        if r == len(fill):
            fill.append(0)
        rows.append(r)
        offsets.append(fill[r])
        fill[r] += length
        while first_open < len(fill) and fill[first_open] >= width:
            first_open += 1
    return np.array(rows, dtype=np.int64), np.array(offsets, dtype=np.int64), len(fill)


def pack(item_seq, item_seq_len, position_ids, width):
    """Pack a right-padded batch.

    Args:
        item_seq (torch.LongTensor): [B L] right-padded item ids (L <= width).
        item_seq_len (torch.LongTensor): [B] lengths, each >= 1.
        position_ids (torch.LongTensor): [B L] the position id of every slot of the padded batch.
        width (int): slots per packed row (the model's maximum sequence length).

    Returns:
        PackedBatch: the packed rows; ``unpack`` maps hidden states back.
    """
    lengths = item_seq_len.clamp(min=1)
    row, offset, n_rows = first_fit_rows(lengths.cpu().numpy(), width)
    device = item_seq.device
    start = torch.as_tensor(row * width + offset, device=device)  # [B] first slot of each sequence
    steps = torch.arange(item_seq.size(1), device=device)
    real = steps.unsqueeze(0) < lengths.unsqueeze(1)  # [B L]
    slots = (start.unsqueeze(1) + steps.unsqueeze(0))[real]  # [N], row-major over the batch

    def scatter(values):
        flat = torch.zeros(n_rows * width, dtype=values.dtype, device=device)
        flat[slots] = values[real]
        return flat.view(n_rows, width)

    batch_index = torch.arange(1, len(item_seq) + 1, device=device).unsqueeze(1).expand_as(item_seq)
    return PackedBatch(scatter(item_seq), scatter(position_ids), scatter(batch_index), slots)


def layer_at_slots(layer, hidden, attention_mask, slots):
    """One RecBole ``TransformerLayer`` whose output is wanted only at ``slots``.

    Attention runs over the whole rows as in the full layer (it is cheap); the output
    projection, the feed-forward block, their layer norms and dropouts, which are most of the
    layer's work, run only at the wanted slots. Each output equals the full layer's output at
    that slot (to float tolerance, in eval mode). Used for the last layer when a loss reads few
    of its positions (e.g. each sequence's last item).

    Args:
        layer (recbole.model.layers.TransformerLayer): the layer; its own modules are used.
        hidden (torch.Tensor): [R W H] the layer's input rows.
        attention_mask (torch.Tensor): [R 1 W W] additive mask, as ``PackedBatch.attention_mask``.
        slots (torch.LongTensor): [M] wanted slots of ``hidden.view(-1, H)``.

    Returns:
        torch.Tensor: [M H] the layer's output at those slots.
    """
    attention = layer.multi_head_attention
    rows, width, size = hidden.shape
    heads, head_size = attention.num_attention_heads, attention.attention_head_size

    def split_heads(x):
        return x.view(rows, width, heads, head_size).transpose(1, 2)  # [R h W d]

    query, key, value = (split_heads(f(hidden)) for f in (attention.query, attention.key, attention.value))
    scores = torch.matmul(query, key.transpose(-1, -2)) / attention.sqrt_attention_head_size + attention_mask
    probs = attention.attn_dropout(attention.softmax(scores))
    context = torch.matmul(probs, value).transpose(1, 2).reshape(rows * width, size)[slots]  # [M H]
    attended = attention.LayerNorm(attention.out_dropout(attention.dense(context)) + hidden.reshape(-1, size)[slots])
    return layer.feed_forward(attended)
