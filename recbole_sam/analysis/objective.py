"""The loss that landscapes and sharpness measure: L(Θ), the mean of ``model.calculate_loss``
over a fixed sample of training batches, in eval mode, with the same random draws each time.

Fixing the batches (negatives included) and the draws inside ``calculate_loss`` (CL4SRec's
augmentations, S3Rec's masks) makes L a deterministic function of Θ, so a landscape shows the
geometry of the loss and not sampling noise. Eval mode switches dropout off for the same reason.
"""

import itertools
import random

import numpy as np
import torch

from recbole_sam.errors import ConfigError
from recbole_sam.rng import RandomDraws


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
