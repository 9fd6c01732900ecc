"""Loss landscapes and sharpness of trained checkpoints (SAMRec, RecSys'23, Sec. 3.5 and Figure 1).

Pure functions: ``landscape`` (filter-normalised directions, loss grids), ``sharpness`` (Hessian
top eigenvalue and trace, rho-sharpness, scale-free measures), ``objective`` (the loss they
measure: each model's own, or one common next-item loss), ``report`` (the ratio table over
models and seeds); checkpoints and their dataset load with ``recbole_sam.loading``, re-exported
here. Plotting lives in ``plots`` and is not imported here, so that the analysis works without matplotlib. ``run_analysis.py`` is the command line.
"""

from recbole_sam.analysis.landscape import Landscape, filter_normalized_directions, loss_grid, model_landscape
from recbole_sam.loading import LoadedCheckpoint, load_checkpoint
from recbole_sam.analysis.objective import BatchLoss, NextItemLoss, common_batches, model_objective, sample_batches
from recbole_sam.sharpness_ratios import ratio_table, read_measurements
from recbole_sam.analysis.sharpness import (
    hessian_trace,
    max_hessian_eigenvalue,
    model_sharpness,
    relative_loss_rise,
    rho_sharpness,
    sharpness_measures,
    top_hessian_eigenvalue,
)

__all__ = [
    "BatchLoss",
    "Landscape",
    "LoadedCheckpoint",
    "NextItemLoss",
    "common_batches",
    "filter_normalized_directions",
    "hessian_trace",
    "load_checkpoint",
    "loss_grid",
    "max_hessian_eigenvalue",
    "model_landscape",
    "model_objective",
    "model_sharpness",
    "ratio_table",
    "read_measurements",
    "relative_loss_rise",
    "rho_sharpness",
    "sample_batches",
    "sharpness_measures",
    "top_hessian_eigenvalue",
]
