"""2-D loss landscapes along filter-normalised random directions (Li et al., NeurIPS'18).

The SAMRec paper (Figure 1) plots L(Θ + a·δ + b·η) for two random directions δ, η. Raw
random directions would make a model with larger weights look flatter; filter normalisation
scales each row of δ (one output unit of a linear layer, one item of an embedding) to the norm
of the same row of Θ, so landscapes of different checkpoints can be compared.
"""

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from recbole_sam.analysis.objective import check_objective, model_objective
from recbole_sam.errors import ConfigError


@dataclass
class Landscape:
    """A loss grid: ``losses[j, i]`` = L(Θ + coords[i]·δ + coords[j]·η) (rows b, columns a)."""

    coords: np.ndarray
    losses: np.ndarray

    @property
    def center_loss(self):
        """L(Θ): the grid's centre (the grid size is odd, so a = b = 0 is on it)."""
        mid = len(self.coords) // 2
        return float(self.losses[mid, mid])


def _generator(seed, index, name):
    # A stable hash (not Python's salted hash()) of seed, direction and parameter name: the
    # direction of a parameter depends on nothing else, so every checkpoint of an architecture
    # gets the same draws, whatever the parameters' order or the device.
    digest = hashlib.sha256(f"{seed}/{index}/{name}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def padding_rows(model):
    """``{'item_embedding.weight': 0, ...}``: the padding row of each ``nn.Embedding`` that has one."""
    return {
        f"{name}.weight" if name else "weight": module.padding_idx
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Embedding) and module.padding_idx is not None
    }


def filter_normalized_directions(model, seed=0, count=2):
    """``count`` random directions, each filter-normalised to the model's current parameters.

    Each parameter with 2+ dimensions gets Gaussian noise, one row per output unit (dim 0),
    each row rescaled to the norm of the same row of Θ. 1-D parameters (biases, LayerNorm)
    and the padding row of embeddings get zero, as in Li et al., who leave BatchNorm alone.

    Args:
        model (torch.nn.Module): supplies the parameters Θ (the trainable ones).
        seed (int): with the parameter names and shapes, fixes the random draws.
        count (int): how many directions.

    Returns:
        list of dict: per direction, ``{parameter name: tensor shaped like it}``.
    """
    padding = padding_rows(model)
    directions = []
    for index in range(count):
        direction = {}
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            theta = param.detach()
            if theta.dim() <= 1:
                direction[name] = torch.zeros_like(theta)
                continue
            noise = torch.randn(theta.shape, generator=_generator(seed, index, name)).to(theta)
            rows, noise_rows = theta.reshape(len(theta), -1), noise.reshape(len(theta), -1)
            scale = rows.norm(dim=1, keepdim=True) / noise_rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
            scaled = (noise_rows * scale).reshape(theta.shape)
            if name in padding:
                scaled[padding[name]] = 0
            direction[name] = scaled
        directions.append(direction)
    return directions


def grid_coords(grid=21, span=1.0):
    """``grid`` evenly spaced values from -span to span, with exactly 0 in the middle.

    Raises:
        ConfigError: ``grid`` is not an odd integer >= 3, or ``span`` is not > 0.
    """
    if not isinstance(grid, int) or grid < 3 or grid % 2 == 0:
        raise ConfigError(f"grid: must be an odd integer >= 3 (so that Θ itself is on it), got {grid!r}")
    if not isinstance(span, (int, float)) or not np.isfinite(span) or span <= 0:
        raise ConfigError(f"range: must be a number > 0, got {span!r}")
    mid = grid // 2
    return span * (np.arange(grid) - mid) / mid  # not linspace: its middle can be 1e-17, not 0


def loss_grid(model, loss_fn, directions, grid=21, span=1.0, progress=True, desc="landscape"):
    """L(Θ + a·δ + b·η) on a ``grid`` × ``grid`` grid of (a, b) in [-span, span]².

    The model's parameters are set to each grid point in turn (always from Θ, so errors do not
    accumulate) and restored bit for bit afterwards, also on error or interrupt.

    Args:
        model (torch.nn.Module): its named parameters are moved; Θ is their current value.
        loss_fn (callable): no arguments, returns L at the current parameters as a float.
        directions (tuple of dict): δ and η, ``{parameter name: tensor}`` (missing names stay at Θ).
        grid (int): points per axis, odd and >= 3.
        span (float): the grid covers [-span, span] on both axes.
        progress (bool): show a tqdm bar over the grid points.
        desc (str): the bar's label.

    Returns:
        Landscape: the coordinates and the ``grid`` × ``grid`` losses.
    """
    coords = grid_coords(grid, span)
    delta, eta = directions
    params = {name: p for name, p in model.named_parameters() if name in delta or name in eta}
    theta = {name: p.detach().clone() for name, p in params.items()}
    losses = np.empty((grid, grid))
    try:
        with torch.no_grad(), tqdm(total=grid * grid, desc=desc, disable=not progress) as bar:
            for j, b in enumerate(coords):
                for i, a in enumerate(coords):
                    for name, p in params.items():
                        step = theta[name]
                        if name in delta:
                            step = step + float(a) * delta[name]
                        if name in eta:
                            step = step + float(b) * eta[name]
                        p.copy_(step)
                    losses[j, i] = loss_fn()
                    bar.update()
    finally:
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(theta[name])
    return Landscape(coords=coords, losses=losses)


def model_landscape(
    model, train_data, grid=21, span=1.0, batches=4, seed=0, progress=True, desc="landscape", objective="own", loss=None
):
    """The landscape of a RecBole model's loss around its current parameters.

    Args:
        model: a RecBole model.
        train_data: its training dataloader.
        grid (int): points per axis, odd and >= 3.
        span (float): the grid covers [-span, span]² in units of the filter-normalised directions.
        batches (int): batches L is averaged over.
        seed (int): fixes the directions, the batches and the draws inside the loss.
        progress (bool): show a tqdm bar.
        desc (str): the bar's label.
        objective (str): ``own`` (the model's training loss), ``bce`` or ``ce`` (the common
            next-item loss, see ``objective.NextItemLoss``).
        loss (optional): an L already built (``objective.model_objective``); then
            ``train_data``, ``batches`` and ``objective`` are not used.

    Returns:
        Landscape: see :func:`loss_grid`.
    """
    grid_coords(grid, span)  # check the arguments before the slow part
    check_objective(objective)
    if loss is None:
        loss = model_objective(model, train_data, objective, batches, seed)
    directions = filter_normalized_directions(model, seed)
    return loss_grid(model, loss.value, directions, grid, span, progress, desc)
