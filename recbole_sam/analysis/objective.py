"""The loss that landscapes and sharpness measure, L(Θ), in one of two kinds:

- ``own`` (:class:`BatchLoss`): the mean of the model's own ``calculate_loss`` over a fixed
  sample of its training batches, with the same random draws each time;
- ``bce`` and ``ce`` (:class:`NextItemLoss`): one **common** next-item loss for every model,
  computed through the model's own encoder and item embeddings on the same users' training
  sequences with the same fixed negatives, so that SASRec, SAMRec, CL4SRec and S3Rec are
  measured on one function (the paper's BCE with one negative per position, or the
  full-softmax CE, at every position of the sequence).

Fixing the batches (negatives included) and the draws inside the loss (CL4SRec's
augmentations, S3Rec's masks) makes L a deterministic function of Θ, so a landscape shows the
geometry of the loss and not sampling noise. Eval mode switches dropout off for the same reason.
"""

import itertools
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from recbole.model.sequential_recommender.s3rec import S3Rec as RecBoleS3Rec

from recbole_sam.errors import ConfigError
from recbole_sam.model.sasrec import SASRec, next_items, trim_padding
from recbole_sam.rng import RandomDraws

OBJECTIVES = ("own", "bce", "ce")


def check_objective(objective):
    """Raise ``ConfigError`` unless ``objective`` is one of :data:`OBJECTIVES`."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective: {objective!r} is not one of {', '.join(OBJECTIVES)}")


def seed_all(seed):
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def sample_batches(train_data, n_batches, seed, device="cpu"):
    """Draw ``n_batches`` training batches once, to be reused for every evaluation of L.

    The caller's random generators are left as they were.

    Args:
        train_data: a RecBole training dataloader.
        n_batches (int): how many batches, >= 1 (fewer if the data has fewer).
        seed (int): picks the shuffle and the sampled negatives; same seed, same batches.
        device: where to put the batches.

    Returns:
        list: RecBole ``Interaction`` batches on ``device``.

    Raises:
        ConfigError: ``n_batches`` < 1, or the training data is empty.
    """
    if not isinstance(n_batches, int) or n_batches < 1:
        raise ConfigError(f"batches: must be an integer >= 1, got {n_batches!r}")
    caller = RandomDraws()
    try:
        seed_all(seed)  # RecBole's negative samplers draw from NumPy's global generator
        generator = getattr(train_data, "generator", None)
        if generator is not None:
            generator.manual_seed(seed)  # the shuffle; RecBole seeds it with config['seed']
        batches = [batch.to(device) for batch in itertools.islice(iter(train_data), n_batches)]
    finally:
        caller.restore()
    if not batches:
        raise ConfigError("batches: the training data has no batches")
    return batches


def total_loss(loss):
    """RecBole models return one loss or a tuple of parts that RecBole sums."""
    return sum(loss) if isinstance(loss, tuple) else loss


class BatchLoss:
    """L(Θ) = mean over fixed batches of ``model.calculate_loss(batch)``, in eval mode, with
    batch i's random draws seeded by ``seed + i`` (the caller's generators are left alone).

    Args:
        model: a RecBole model; only ``calculate_loss`` is used.
        batches (list): batches from :func:`sample_batches`.
        seed (int): seeds the random draws inside ``calculate_loss``.
    """

    def __init__(self, model, batches, seed=0):
        self.model, self.batches, self.seed = model, list(batches), seed

    def terms(self):
        """Yield each batch's share of L (its loss / number of batches), with autograd graph.

        One batch's graph at a time, so Hessian-vector products need one batch's memory.
        """
        was_training = self.model.training
        self.model.eval()
        try:
            for i, batch in enumerate(self.batches):
                caller = RandomDraws()
                seed_all(self.seed + i)
                try:
                    loss = total_loss(self.model.calculate_loss(batch))
                finally:
                    caller.restore()
                yield loss / len(self.batches)
        finally:
            self.model.train(was_training)

    def value(self):
        """L at the model's current parameters, as a float."""
        with torch.no_grad():
            return sum(term.double().item() for term in self.terms())

    def parameters(self):
        """The parameters L is differentiated in: the model's trainable ones."""
        return [p for p in self.model.parameters() if p.requires_grad]


# ----- the common next-item objective -----------------------------------------------------------


@dataclass
class SequenceBatch:
    """Right-padded sequences with a target and a fixed negative at every position.

    ``item_seq`` [B W] inputs, ``item_seq_len`` [B], ``targets`` [B W] (the next item, 0 on
    padding), ``negatives`` [B W] (one sampled item per slot; only real positions are used).
    """

    item_seq: torch.Tensor
    item_seq_len: torch.Tensor
    targets: torch.Tensor
    negatives: torch.Tensor

    def to(self, device):
        return SequenceBatch(*(t.to(device) for t in (self.item_seq, self.item_seq_len, self.targets, self.negatives)))


def training_sequences(train_dataset):
    """Each user's whole training sequence, as the last row of ``train_scheme: sequence`` has it,
    whatever the checkpoint's own ``train_scheme`` and ``train_fraction``.

    Args:
        train_dataset: the training split of ``recbole_sam.data.dataset.create_dataset`` (it
            carries ``user_sequences``); ``train_data._dataset`` of a loaded checkpoint.

    Returns:
        tuple: ``item_seq`` [U W] (the last W = MAX_ITEM_LIST_LENGTH items before the user's
        last training target, right-padded), ``item_seq_len`` [U] and ``pos_items`` [U] (that
        target), LongTensors over the U users with a training row, in user-id order.

    Raises:
        ConfigError: the dataset does not know its users' sequences.
    """
    sequences = getattr(train_dataset, "user_sequences", None)
    if sequences is None:
        raise ConfigError("objective: the common objectives need recbole-sam's sequential dataset (user_sequences)")
    width = train_dataset.config["MAX_ITEM_LIST_LENGTH"]
    cutoff = sequences.cutoff[0].numpy()  # items before each user's last training target; -1: none
    users = np.flatnonzero(cutoff > 0)
    item_seq = np.zeros((len(users), width), dtype=np.int64)
    lengths, pos_items = np.zeros(len(users), dtype=np.int64), np.zeros(len(users), dtype=np.int64)
    for row, user in enumerate(users):
        end = sequences.indptr[user] + cutoff[user]  # index of the last training target
        inputs = sequences.items[max(sequences.indptr[user], end - width) : end]
        item_seq[row, : len(inputs)] = inputs
        lengths[row], pos_items[row] = len(inputs), sequences.items[end]
    return torch.as_tensor(item_seq), torch.as_tensor(lengths), torch.as_tensor(pos_items)


def fixed_negatives(item_seq, n_items, generator, rounds=5):
    """One uniform negative in [1, n_items) per slot of ``item_seq`` [B W], redrawn (a few
    rounds) while it is in the input sequence: SASRec's sampler (``neg_exclude: input``),
    drawn from ``generator`` instead of the global one."""
    negatives = torch.randint(1, n_items, item_seq.shape, generator=generator)
    for _ in range(rounds):
        seen = (negatives.unsqueeze(-1) == item_seq.unsqueeze(1)).any(-1)
        if not seen.any():
            break
        negatives = torch.where(seen, torch.randint(1, n_items, item_seq.shape, generator=generator), negatives)
    return negatives


def sequence_batch(item_seq, item_seq_len, pos_items, negatives):
    """A :class:`SequenceBatch` of right-padded inputs, trimmed to the longest sequence, with
    the next item at every position as its target; ``negatives`` is [B W'] for W' >= the
    trimmed width (only its first columns are kept)."""
    item_seq = trim_padding(item_seq, item_seq_len)
    targets = next_items(item_seq, item_seq_len, pos_items)
    return SequenceBatch(item_seq, item_seq_len, targets, negatives[:, : item_seq.size(1)])


def common_batches(train_dataset, batch_size, n_batches, seed, device="cpu"):
    """The common objective's data: ``n_batches`` batches of ``batch_size`` users' training
    sequences (a seeded random sample of users) with fixed negatives. Depends only on the
    dataset and the arguments, so every model of one dataset gets the same batches.

    Args:
        train_dataset: see :func:`training_sequences`.
        batch_size (int): users per batch.
        n_batches (int): how many batches, >= 1 (fewer if the data has fewer users).
        seed (int): picks the users and the negatives.
        device: where to put the batches.

    Returns:
        list of SequenceBatch.
    """
    if not isinstance(n_batches, int) or n_batches < 1:
        raise ConfigError(f"batches: must be an integer >= 1, got {n_batches!r}")
    item_seq, lengths, pos_items = training_sequences(train_dataset)
    if len(item_seq) == 0:
        raise ConfigError("batches: the training data has no sequences")
    n_items = train_dataset.item_num
    generator = torch.Generator().manual_seed(seed)
    users = torch.randperm(len(item_seq), generator=generator)[: batch_size * n_batches]
    batches = []
    for chunk in users.split(batch_size):
        seq = trim_padding(item_seq[chunk], lengths[chunk])
        negatives = fixed_negatives(seq, n_items, generator)
        batches.append(sequence_batch(seq, lengths[chunk], pos_items[chunk], negatives).to(device))
    return batches


def sequence_encoder(model):
    """The model's encoder as ``(item_seq, item_seq_len) -> hidden states [B W H]`` at every
    position of a right-padded batch, each seeing only the items up to it.

    Our SASRec and CL4SRec: ``encode``; RecBole's S3Rec (fine-tuned): ``forward`` with the
    uni-directional attention of its fine-tuning stage.

    Raises:
        ConfigError: another model, or a pre-trained (not fine-tuned) S3Rec.
    """
    if isinstance(model, SASRec):
        return model.encode
    if isinstance(model, RecBoleS3Rec):
        if model.train_stage != "finetune":
            raise ConfigError("objective: an S3Rec checkpoint of train_stage pretrain has no next-item model; measure the fine-tuned one")
        return lambda item_seq, item_seq_len: model.forward(item_seq, bidirectional=False)
    raise ConfigError(
        f"objective: {type(model).__name__} has no SASRec-shaped encoder; bce and ce support SASRec, CL4SRec "
        "and S3Rec (use objective own for other models)"
    )


def candidate_embeddings(model, n_items):
    """The item table the common objective scores: the first ``n_items`` rows of the model's
    item embedding (padding id 0 and the real items, as RecBole's CE; without the mask token
    that CL4SRec and S3Rec append)."""
    return model.item_embedding.weight[:n_items]


class NextItemLoss(BatchLoss):
    """The common objective: L(Θ) = mean over fixed :class:`SequenceBatch` es of the next-item
    loss at every real position, in eval mode, through the model's own encoder and item table.

    ``kind`` ``bce``: -log σ(h·e_target) - log(1 - σ(h·e_negative)), the paper's Eq. 2 (what our
    SASRec's ``loss_type: BCE`` computes); ``ce``: the cross-entropy of softmax(h·Eᵀ) over the
    ``n_items`` items. Each batch's loss is its mean over positions, as the models' own losses.

    Args:
        model: SASRec, CL4SRec or a fine-tuned S3Rec (see :func:`sequence_encoder`).
        batches (list of SequenceBatch): from :func:`common_batches`.
        kind (str): ``bce`` or ``ce``.
        n_items (int): the dataset's item count (ids 0..n_items-1, padding included).
    """

    def __init__(self, model, batches, kind, n_items):
        if kind not in ("bce", "ce"):
            raise ConfigError(f"objective: {kind!r} is not a common objective (bce, ce)")
        super().__init__(model, batches)
        self.encode, self.kind, self.n_items = sequence_encoder(model), kind, n_items
        if model.item_embedding.num_embeddings < n_items:
            raise ConfigError(f"objective: the model has {model.item_embedding.num_embeddings} item embeddings, the data {n_items} items")

    def batch_loss(self, batch):
        """The loss of one batch (mean over its real positions), with autograd graph."""
        position = batch.targets > 0
        hidden = self.encode(batch.item_seq, batch.item_seq_len)[position]
        items = candidate_embeddings(self.model, self.n_items)
        targets = batch.targets[position]
        if self.kind == "ce":
            return F.cross_entropy(hidden @ items.T, targets)
        pos_logits = (hidden * items[targets]).sum(-1)
        neg_logits = (hidden * items[batch.negatives[position]]).sum(-1)
        return -(F.logsigmoid(pos_logits) + F.logsigmoid(-neg_logits)).mean()

    def terms(self):
        was_training = self.model.training
        self.model.eval()
        try:
            for batch in self.batches:
                yield self.batch_loss(batch) / len(self.batches)
        finally:
            self.model.train(was_training)


def same_batches(first, second):
    """Whether two lists of :class:`SequenceBatch` hold the same tensors."""
    fields = ("item_seq", "item_seq_len", "targets", "negatives")
    return len(first) == len(second) and all(
        torch.equal(getattr(a, f).cpu(), getattr(b, f).cpu()) for a, b in zip(first, second) for f in fields
    )


def model_objective(model, train_data, objective="own", batches=4, seed=0, batch_size=None):
    """The L(Θ) to measure a loaded model on.

    Args:
        model: a RecBole model.
        train_data: its training dataloader.
        objective (str): ``own`` (the model's ``calculate_loss`` on its own training batches),
            ``bce`` or ``ce`` (the common next-item loss, see :class:`NextItemLoss`).
        batches (int): how many batches L averages.
        seed (int): fixes the batches and the draws (negatives, augmentations, masks).
        batch_size (int, optional): users per batch of a common objective; default the
            checkpoint's ``train_batch_size``.

    Returns:
        BatchLoss or NextItemLoss: with ``terms()``, ``value()`` and ``parameters()``.
    """
    check_objective(objective)
    device = next(model.parameters()).device
    if objective == "own":
        return BatchLoss(model, sample_batches(train_data, batches, seed, device), seed)
    dataset = train_data._dataset
    size = batch_size or dataset.config["train_batch_size"]
    return NextItemLoss(model, common_batches(dataset, size, batches, seed, device), objective, dataset.item_num)
