"""Training-set options on top of RecBole's ``SequentialDataset``; validation and test are untouched.

- ``train_scheme: sequence`` (the SAMRec paper's Eq. 2, and SASRec's original training): each
  user's training sequence is one sample, with a loss at every position, instead of RecBole's
  one sample per prefix with a loss on its last position only. The same targets, about
  ``mean sequence length`` times fewer forward passes an epoch.
- ``train_fraction: f`` (the paper's sparsity study): keep a fraction f of the training data,
  chosen by ``train_fraction_by``: ``random_rows`` (a seeded random fraction of the training
  samples: of the prefixes, or under ``train_scheme: sequence`` of the users' sequences) or
  ``first_users`` (the whole training sequences of the first ``int(f * users)`` users in the
  dataset file's order, as ICLRec's ``--training_data_ratio`` takes ``user_seq[:int(len(user_seq)
  * ratio)]``, the code of the SAMRec authors' lineage). Validation and test keep every user.

- ``s3rec_pretrain_samples: reference`` (S3Rec pre-training only): the S3Rec reference code's
  samples (``PretrainDataset.split_sequence``, datasets.py:18-22): each user's training part cut
  to its last MAX_ITEM_LIST_LENGTH items, then every prefix of that window, the whole window
  included. RecBole's prefixes (``recbole``) stop one item short and slide the window instead.

Every split also carries what the paper-setting options need, computed once from all three
splits before the training split is cut (``UserSequences``): each user's items in time order,
so that evaluation can exclude a user's history (``eval_mask_history``) and sampling can avoid
every item of the user (``neg_exclude: user``).
"""

import numpy as np
import torch
from recbole.data import create_dataset as recbole_create_dataset
from recbole.data import dataset as recbole_datasets
from recbole.data.dataset import SequentialDataset
from recbole.data.interaction import Interaction
from recbole.utils import ModelType

from recbole_sam.errors import ConfigError

TRAIN_SCHEMES = ("prefix", "sequence")
TRAIN_FRACTION_BY = ("random_rows", "first_users")
PRETRAIN_SAMPLES = ("recbole", "reference")


class UserSequences:
    """Each user's items in time order (CSR: ``items[indptr[u]:indptr[u + 1]]``), and for each
    split the number of items before its target (``cutoff[split][u]``, -1 without a row).

    Built from RecBole's augmented splits (one row per prefix: ``item_id_list`` -> ``item_id``),
    whose rows are, per user, in time order within a split, and train < valid < test.
    """

    def __init__(self, splits, uid_field, iid_field, list_field, n_users):
        uids = np.concatenate([split.inter_feat[uid_field].numpy() for split in splits])
        targets = np.concatenate([split.inter_feat[iid_field].numpy() for split in splits])
        firsts = np.concatenate([split.inter_feat[list_field][:, 0].numpy() for split in splits])
        which = np.concatenate([np.full(len(split.inter_feat), k) for k, split in enumerate(splits)])
        order = np.argsort(uids, kind="stable")
        uids, targets, firsts, which = uids[order], targets[order], firsts[order], which[order]
        rows_per_user = np.bincount(uids, minlength=n_users)
        row_start = np.concatenate([[0], np.cumsum(rows_per_user)[:-1]])
        rank = np.arange(len(uids)) - row_start[uids]  # the row's place among its user's rows

        # A user's sequence: the first row's input (its first item), then every row's target.
        lengths = np.where(rows_per_user > 0, rows_per_user + 1, 0)
        self.indptr = np.concatenate([[0], np.cumsum(lengths)])
        self.items = np.zeros(self.indptr[-1], dtype=np.int64)
        self.items[self.indptr[uids] + rank + 1] = targets
        first_rows = rank == 0
        self.items[self.indptr[uids[first_rows]]] = firsts[first_rows]

        self.cutoff, self.repeated = [], []
        for k in range(len(splits)):
            cutoff = np.full(n_users, -1, dtype=np.int64)
            mine = which == k
            cutoff[uids[mine]] = rank[mine] + 1
            self.cutoff.append(torch.as_tensor(cutoff))
            self.repeated.append(bool(np.any(np.bincount(uids[mine], minlength=n_users) > 1)))
        self.indptr_t, self.items_t = torch.as_tensor(self.indptr), torch.as_tensor(self.items)

    def user_item_keys(self, n_items):
        """torch.LongTensor: sorted unique ``user * n_items + item`` over every item of every user."""
        users = np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))
        return torch.as_tensor(np.unique(users * n_items + self.items))

    def history(self, user_ids, split):
        """The items before each user's target in ``split`` (0 train, 1 valid, 2 test).

        Args:
            user_ids (torch.LongTensor): [B] users, each with one row in ``split``.
            split (int): which split's targets.

        Returns:
            tuple: ``(rows, items)``, LongTensors indexing a [B n_items] score matrix.
        """
        user_ids = user_ids.cpu()
        counts = self.cutoff[split][user_ids].clamp(min=0)
        rows = torch.repeat_interleave(torch.arange(len(user_ids)), counts)
        ends = torch.cumsum(counts, 0)
        within = torch.arange(int(ends[-1]) if len(ends) else 0) - torch.repeat_interleave(ends - counts, counts)
        items = self.items_t[torch.repeat_interleave(self.indptr_t[user_ids], counts) + within]
        return rows, items


class SAMSequentialDataset(SequentialDataset):
    """RecBole's ``SequentialDataset`` whose training split follows ``train_scheme`` and
    ``train_fraction``, and whose splits know each user's sequence (``user_sequences``, split
    index ``split_index``) and, for ``neg_exclude: user``, ``user_item_keys``."""

    def build(self):
        train, valid, test = super().build()
        sequences = UserSequences(
            [train, valid, test], self.uid_field, self.iid_field, self.item_id_list_field, self.user_num
        )
        keys = sequences.user_item_keys(self.item_num) if self.config["neg_exclude"] == "user" else None
        for index, split in enumerate((train, valid, test)):
            split.user_sequences, split.split_index, split.user_item_keys = sequences, index, keys
        if self.config["eval_mask_history"] and (sequences.repeated[1] or sequences.repeated[2]):
            raise ConfigError(
                "eval_mask_history: needs one valid and one test row per user (eval_args split {'LS': 'valid_and_test'})"
            )
        if self.config["train_stage"] == "pretrain" and self.config["s3rec_pretrain_samples"] == "reference":
            users, lists, lengths = window_prefixes(sequences, self.config["MAX_ITEM_LIST_LENGTH"])
            train.inter_feat = Interaction({
                self.uid_field: torch.as_tensor(users), self.item_id_list_field: torch.as_tensor(lists),
                self.item_list_length_field: torch.as_tensor(lengths),
                # Pre-training reads no target; each sample's most recent item keeps item counts true.
                self.iid_field: torch.as_tensor(lists[np.arange(len(lists)), lengths - 1]),
            })  # fmt: skip
        rows = np.arange(len(train.inter_feat))
        if self.config["train_scheme"] == "sequence":
            rows = last_row_per_user(train.inter_feat[self.uid_field].numpy())
        fraction = self.config["train_fraction"]
        if fraction < 1:
            user_ids = train.inter_feat[self.uid_field].numpy()
            rows = fraction_of_rows(rows, user_ids, fraction, self.config["train_fraction_by"], self.config["seed"])
        train.inter_feat = train.inter_feat[rows]
        return [train, valid, test]


def window_prefixes(sequences, window):
    """The S3Rec reference's pre-training samples (datasets.py:18-22: ``seq[-(max_len + 2):-2]``,
    then every prefix of it): each user's training part cut to its last ``window`` items, and
    every prefix of that cut, the whole cut included.

    Args:
        sequences (UserSequences): every user's items; the training part is what precedes the
            validation target (or, without one, the items up to the last training target).
        window (int): MAX_ITEM_LIST_LENGTH.

    Returns:
        tuple: users [N], right-padded item lists [N, window] and their lengths [N] (numpy).
    """
    valid_cutoff, train_cutoff = sequences.cutoff[1].numpy(), sequences.cutoff[0].numpy()
    parts = np.where(valid_cutoff >= 0, valid_cutoff, train_cutoff + 1)  # training items per user
    kept = np.minimum(parts, window)
    users = np.repeat(np.arange(len(parts)), kept)
    starts = np.repeat(sequences.indptr[:-1] + parts - kept, kept)  # where each user's cut begins
    lengths = np.arange(len(users)) - np.repeat(np.cumsum(kept) - kept, kept) + 1  # 1 .. kept
    columns = np.arange(window)
    inside = columns[None, :] < lengths[:, None]
    positions = np.where(inside, starts[:, None] + columns[None, :], 0)
    lists = np.where(inside, sequences.items[positions], 0)
    return users, lists, lengths


def fraction_of_rows(rows, user_ids, fraction, by, seed):
    """The kept training ``rows`` (sorted) for ``train_fraction``/``train_fraction_by``;
    ``user_ids`` holds the user of every training row. RecBole numbers users in the order they
    first appear in the file, so the first users are those with the smallest ids."""
    if by == "first_users":
        users = np.unique(user_ids[rows])
        kept = users[: int(fraction * len(users))]
        return rows[np.isin(user_ids[rows], kept)]
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(rows, size=max(1, round(fraction * len(rows))), replace=False))


def last_row_per_user(user_ids):
    """Index of each user's last row. RecBole's augmentation sorts by user then time, so a
    user's last training row holds the longest prefix: the whole training sequence."""
    reversed_first = np.unique(user_ids[::-1], return_index=True)[1]
    return np.sort(len(user_ids) - 1 - reversed_first)


def check_training_options(config):
    """Raise ``ConfigError`` for a bad ``train_scheme`` or ``train_fraction``."""
    if config["train_scheme"] not in TRAIN_SCHEMES:
        raise ConfigError(f"train_scheme: {config['train_scheme']!r} is not one of {', '.join(TRAIN_SCHEMES)}")
    if config["neg_exclude"] == "user" and config["train_scheme"] != "sequence":
        raise ConfigError("neg_exclude: user needs train_scheme: sequence (prefix samples take RecBole's sampled negatives)")
    fraction = config["train_fraction"]
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ConfigError(f"train_fraction: must be a number in (0, 1], got {fraction!r}")
    by = config["train_fraction_by"] or "random_rows"
    if by not in TRAIN_FRACTION_BY:
        raise ConfigError(f"train_fraction_by: {by!r} is not one of {', '.join(TRAIN_FRACTION_BY)}")


def _options_on(config):
    """The names of our dataset options that differ from RecBole's behaviour."""
    return [
        name
        for name, on in (
            ("train_scheme", config["train_scheme"] != "prefix"),
            ("train_fraction", config["train_fraction"] != 1),
            ("eval_mask_history", bool(config["eval_mask_history"]) or bool(config["eval_report_both"])),
            ("neg_exclude", config["neg_exclude"] == "user"),
        )
        if on
    ]


def create_dataset(config):
    """``SAMSequentialDataset`` for sequential models on RecBole's ``SequentialDataset``, else RecBole's.

    Raises:
        ConfigError: one of our dataset options on a model whose dataset is not RecBole's ``SequentialDataset``.
    """
    own_dataset = hasattr(recbole_datasets, config["model"] + "Dataset")  # how RecBole picks one
    sequential = config["MODEL_TYPE"] == ModelType.SEQUENTIAL and not own_dataset
    if sequential and not config["benchmark_filename"]:
        return SAMSequentialDataset(config)
    if _options_on(config):
        raise ConfigError(
            f"{'/'.join(_options_on(config))}: supported for sequential models on RecBole's SequentialDataset "
            f"with one dataset file, not {config['model']!r}"
        )
    return recbole_create_dataset(config)
