"""What the recommender-specific SAM variants need from a RecBole model and dataset.

- ``sam_params`` (SAM-ON, Mueller et al., NeurIPS'23, for normalisation layers): which
  parameters the ascent perturbs, as optimizer parameter groups with a ``perturb`` flag.
- ``sam_variant: helen`` (Zhu et al., WWW'24): each item-embedding row's radius scaled by the
  item's frequency in the training split.

The optimizer maths is in ``recbole_sam.optim``; the trajectory loss (``sam_variant: saf``) in
``recbole_sam.trajectory``.
"""

import numpy as np
import torch
from torch import nn

from recbole_sam.errors import ConfigError

SAM_PARAMS = ("all", "dense", "norm")


def _perturbed_ids(model, which):
    if which == "dense":  # everything but embedding tables (item, position, user, ...)
        excluded = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
        return {id(p) for p in model.parameters() if id(p) not in excluded}
    if which == "norm":  # LayerNorm affine parameters only
        return {id(p) for m in model.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters(recurse=False)}
    return {id(p) for p in model.parameters()}


def parameter_groups(model, which):
    """The model's parameters as optimizer groups for ``sam_params``.

    Args:
        model (torch.nn.Module): the model to train.
        which (str): ``all`` (one group, as RecBole passes them), ``dense`` (every parameter
            but the weights of ``nn.Embedding`` modules) or ``norm`` (the weights and biases
            of ``nn.LayerNorm`` modules).

    Returns:
        list: ``[{"params": [...], "perturb": True}, {"params": [...], "perturb": False}]``
        (groups without parameters left out), or ``list(model.parameters())`` for ``all``.

    Raises:
        ConfigError: ``which`` is unknown, or selects no parameter of this model.
    """
    if which not in SAM_PARAMS:
        raise ConfigError(f"sam_params: {which!r} is not one of {', '.join(SAM_PARAMS)}")
    params = list(model.parameters())
    if which == "all":
        return params
    chosen = _perturbed_ids(model, which)
    perturbed = [p for p in params if id(p) in chosen]
    if not perturbed:
        kind = "nn.LayerNorm" if which == "norm" else "parameter outside nn.Embedding"
        raise ConfigError(
            f"sam_params: {which!r} selects nothing in {type(model).__name__} (it has no {kind}); "
            f"allowed: {', '.join(SAM_PARAMS)}"
        )
    rest = [p for p in params if id(p) not in chosen]
    return [{"params": perturbed, "perturb": True}] + ([{"params": rest, "perturb": False}] if rest else [])


def item_embedding_table(model):
    """The model's item embedding table: the ``nn.Embedding`` named ``item_embedding`` (every
    RecBole model with item embeddings, ours included, names it so).

    Raises:
        ConfigError: the model has none.
    """
    table = getattr(model, "item_embedding", None)
    if not isinstance(table, nn.Embedding):
        raise ConfigError(
            f"sam_variant: helen scales item-embedding rows, and {type(model).__name__} has no nn.Embedding "
            "named item_embedding; use sam, asam or looksam"
        )
    return table.weight


def training_item_counts(dataset):
    """How often each item occurs in the training split, as Helen counts feature occurrences.

    For a sequential dataset of ours (``user_sequences``), each user's training sequence: its
    first item and every training target, whatever ``train_scheme`` and ``train_fraction``
    do to the samples. Otherwise each row of the training split's interactions counts once
    (general and context-aware models; rows with any label).

    Args:
        dataset (recbole.data.dataset.Dataset): the training split (``train_data._dataset``).

    Returns:
        numpy.ndarray: counts of length ``dataset.item_num`` (index 0, padding, is 0).
    """
    sequences = getattr(dataset, "user_sequences", None)
    if sequences is not None and getattr(dataset, "split_index", None) == 0:
        # A user's training items: the cutoff[0] items before its last training target, and that target.
        owner = np.repeat(np.arange(len(sequences.indptr) - 1), np.diff(sequences.indptr))
        place = np.arange(len(sequences.items)) - sequences.indptr[owner]
        items = sequences.items[place <= sequences.cutoff[0].numpy()[owner]]
    else:
        items = dataset.inter_feat[dataset.iid_field].numpy()
    return np.bincount(items, minlength=dataset.item_num)[: dataset.item_num]


def helen_row_scale(counts, bound, rows=None):
    """Helen's per-row factor s_i = max(n_i / max_j n_j, bound).

    Helen (Zhu et al., WWW'24, Alg. 1) perturbs the embedding of feature i by
    Δ_i = rho · s_i · g_i / ‖g_E‖₂: frequent items, whose minima the paper finds sharpest, get
    the full radius, rare ones a fraction of it, never less than ``bound`` (the paper's ξ,
    0.3 in its code). Helen's code counts occurrences in each batch; here n_i is the item's
    frequency in the whole training split (``training_item_counts``).

    Args:
        counts (array-like): n_i, one count per item id.
        bound (float): ξ, the smallest factor, in (0, 1].
        rows (int, optional): rows of the table (e.g. one more for BERT4Rec's mask token);
            rows beyond ``counts`` have n_i = 0.

    Returns:
        torch.Tensor: float32 factors, one per row.
    """
    counts = torch.as_tensor(np.asarray(counts), dtype=torch.float64)
    rows = len(counts) if rows is None else rows
    full = torch.zeros(rows, dtype=torch.float64)
    full[: min(rows, len(counts))] = counts[:rows]
    top = full.max()
    relative = full / top if top > 0 else full
    return relative.clamp(min=bound).float()
