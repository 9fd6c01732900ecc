"""Training-set options on top of RecBole's ``SequentialDataset``; validation and test are untouched.

- ``train_scheme: sequence`` (the SAMRec paper's Eq. 2, and SASRec's original training): each
  user's training sequence is one sample, with a loss at every position, instead of RecBole's
  one sample per prefix with a loss on its last position only. The same targets, about
  ``mean sequence length`` times fewer forward passes an epoch.
- ``train_fraction: f`` (the paper's sparsity study): keep a seeded random fraction f of the
  training samples.
"""

import numpy as np
from recbole.data import create_dataset as recbole_create_dataset
from recbole.data import dataset as recbole_datasets
from recbole.data.dataset import SequentialDataset
from recbole.utils import ModelType

from recbole_sam.errors import ConfigError

TRAIN_SCHEMES = ("prefix", "sequence")


class SAMSequentialDataset(SequentialDataset):
    """RecBole's ``SequentialDataset`` whose training split follows ``train_scheme`` and ``train_fraction``."""

    def build(self):
        train, valid, test = super().build()
        rows = np.arange(len(train.inter_feat))
        if self.config["train_scheme"] == "sequence":
            rows = last_row_per_user(train.inter_feat[self.uid_field].numpy())
        fraction = self.config["train_fraction"]
        if fraction < 1:
            rng = np.random.default_rng(self.config["seed"])
            rows = np.sort(rng.choice(rows, size=max(1, round(fraction * len(rows))), replace=False))
        train.inter_feat = train.inter_feat[rows]
        return [train, valid, test]


def last_row_per_user(user_ids):
    """Index of each user's last row. RecBole's augmentation sorts by user then time, so a
    user's last training row holds the longest prefix: the whole training sequence."""
    reversed_first = np.unique(user_ids[::-1], return_index=True)[1]
    return np.sort(len(user_ids) - 1 - reversed_first)


def check_training_options(config):
    """Raise ``ConfigError`` for a bad ``train_scheme`` or ``train_fraction``."""
    if config["train_scheme"] not in TRAIN_SCHEMES:
        raise ConfigError(f"train_scheme: {config['train_scheme']!r} is not one of {', '.join(TRAIN_SCHEMES)}")
    fraction = config["train_fraction"]
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ConfigError(f"train_fraction: must be a number in (0, 1], got {fraction!r}")


def create_dataset(config):
    """RecBole's ``create_dataset``, or ``SAMSequentialDataset`` when a training option is on.

    Raises:
        ConfigError: a training option on a model whose dataset is not RecBole's ``SequentialDataset``.
    """
    if config["train_scheme"] == "prefix" and config["train_fraction"] == 1:
        return recbole_create_dataset(config)
    own_dataset = hasattr(recbole_datasets, config["model"] + "Dataset")  # how RecBole picks one
    if own_dataset or config["MODEL_TYPE"] != ModelType.SEQUENTIAL:
        raise ConfigError(
            f"train_scheme/train_fraction: supported for sequential models on RecBole's SequentialDataset, not {config['model']!r}"
        )
    return SAMSequentialDataset(config)
