"""Pictures of loss landscapes: 3-D surfaces (as in SAMRec's Figure 1) and contour maps.

Several landscapes are drawn side by side on one colour scale and one z range, so that a
sharper minimum looks sharper. ``relative=True`` draws L − L(Θ) instead of L: checkpoints whose
losses differ in level (another loss function, CL4SRec's extra contrastive term) then share a
scale that shows curvature rather than level. Figures are built with matplotlib's object API
on the Agg canvas: no window, and no change to the process's pyplot backend.
"""

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from recbole_sam.analysis.landscape import Landscape
from recbole_sam.errors import ConfigError

PANEL_INCHES = 4.0


def _prepared(landscapes, labels, relative):
    if not landscapes:
        raise ConfigError("plot: no landscapes to draw")
    if len(labels) != len(landscapes):
        raise ConfigError(f"labels: {len(labels)} given for {len(landscapes)} landscapes")
    if not relative:
        return landscapes
    return [Landscape(land.coords, land.losses - land.center_loss) for land in landscapes]


def _shared_scale(landscapes, zmax):
    low = min(float(np.min(land.losses)) for land in landscapes)
    high = max(float(np.max(land.losses)) for land in landscapes)
    if zmax is not None:
        high = min(high, zmax)
    if not high > low:
        high = low + 1e-12  # a flat landscape still gets a valid colour scale
    return Normalize(vmin=low, vmax=high)


def _clipped(land, norm):
    return np.clip(land.losses, norm.vmin, norm.vmax)  # --zmax: keep the basin visible


def _title(label, land):
    return f"{label}\nL(Θ) = {land.center_loss:.4f}"


def plot_surfaces(landscapes, labels, path, zmax=None, relative=False, dpi=100, cmap="viridis"):
    """3-D surfaces of L(Θ + a·δ + b·η), one panel per landscape, on a shared z and colour scale.

    Args:
        landscapes (list of Landscape): from ``landscape.loss_grid``.
        labels (list of str): one title per landscape.
        path (str): the PNG to write.
        zmax (float, optional): clip values above this (the outer grid can dwarf the basin).
        relative (bool): draw L − L(Θ) instead of L.
        dpi (int): resolution.
        cmap (str): matplotlib colour map.
    """
    shown = _prepared(landscapes, labels, relative)
    norm = _shared_scale(shown, zmax)
    fig = Figure(figsize=(PANEL_INCHES * len(shown), PANEL_INCHES), dpi=dpi)
    for index, (land, original, label) in enumerate(zip(shown, landscapes, labels)):
        ax = fig.add_subplot(1, len(shown), index + 1, projection="3d")
        a, b = np.meshgrid(land.coords, land.coords)
        ax.plot_surface(a, b, _clipped(land, norm), cmap=colormaps[cmap], norm=norm, linewidth=0, antialiased=True)
        ax.set_zlim(norm.vmin, norm.vmax)
        ax.set_title(_title(label, original), fontsize=9)
        ax.set_xlabel("δ")
        ax.set_ylabel("η")
        for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
            axis.set_major_locator(MaxNLocator(5))
        ax.tick_params(labelsize=7)
    fig.savefig(path, format="png")


def plot_contours(
    landscapes, labels, path, zmax=None, relative=False, levels=20, dpi=100, cmap="viridis", loss_name="training loss"
):
    """Contour maps of the same landscapes: shared levels, one colour bar, Θ marked.

    Args:
        landscapes (list of Landscape): from ``landscape.loss_grid``.
        labels (list of str): one title per landscape.
        path (str): the PNG to write.
        zmax (float, optional): clip values above this.
        relative (bool): draw L − L(Θ) instead of L.
        levels (int): number of contour levels.
        dpi (int): resolution.
        cmap (str): matplotlib colour map.
        loss_name (str): what L is, for the colour bar.
    """
    shown = _prepared(landscapes, labels, relative)
    norm = _shared_scale(shown, zmax)
    fig = Figure(figsize=(PANEL_INCHES * len(shown) + 1.0, PANEL_INCHES), dpi=dpi, layout="constrained")
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    bounds = np.linspace(norm.vmin, norm.vmax, levels + 1)
    filled = None
    for ax, land, original, label in zip(axes, shown, landscapes, labels):
        a, b = np.meshgrid(land.coords, land.coords)
        filled = ax.contourf(a, b, _clipped(land, norm), levels=bounds, cmap=colormaps[cmap], norm=norm)
        ax.contour(a, b, _clipped(land, norm), levels=bounds, colors="k", linewidths=0.3)
        ax.plot(0, 0, marker="+", color="red", markersize=10)
        ax.set_title(_title(label, original), fontsize=9)
        ax.set_xlabel("δ")
        ax.set_ylabel("η")
        ax.set_aspect("equal")
    bar_label = f"{loss_name} − L(Θ)" if relative else loss_name
    fig.colorbar(filled, ax=list(axes), label=bar_label, ticks=MaxNLocator(6))
    fig.savefig(path, format="png")
