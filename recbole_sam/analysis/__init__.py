"""Loss landscapes and sharpness of trained checkpoints (SAMRec, RecSys'23, Sec. 3.5 and Figure 1).

Pure functions: ``landscape`` (filter-normalised directions, loss grids), ``sharpness`` (Hessian
top eigenvalue and trace, rho-sharpness) and ``objective`` (the loss they measure); checkpoints
and their dataset load with ``recbole_sam.loading``, re-exported here. Plotting lives in
``plots`` and is not imported here, so that the analysis works without matplotlib. ``run_analysis.py`` is the command line.
"""

from recbole_sam.analysis.landscape import Landscape, filter_normalized_directions, loss_grid, model_landscape
from recbole_sam.loading import LoadedCheckpoint, load_checkpoint
from recbole_sam.analysis.objective import BatchLoss, sample_batches
from recbole_sam.analysis.sharpness import hessian_trace, model_sharpness, rho_sharpness, top_hessian_eigenvalue

__all__ = [
    "BatchLoss",
    "Landscape",
    "LoadedCheckpoint",
    "filter_normalized_directions",
    "hessian_trace",
    "load_checkpoint",
    "loss_grid",
    "model_landscape",
    "model_sharpness",
    "rho_sharpness",
    "sample_batches",
    "top_hessian_eigenvalue",
]
