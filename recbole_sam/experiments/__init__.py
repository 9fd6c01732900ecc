"""The SAMRec paper's experiments (RecSys'23, Tables 1-2, Figures 2-3) as resumable grids of runs,
and the verdict on them (does SAM help SASRec?).

``runner`` expands a grid and executes it, one JSON record per finished run; ``report`` turns
records into CSV and Markdown (mean ± std over seeds, improvement of +SAM over its backbone);
``plots`` draws the rho and sparsity sweeps and is not imported here, so that the rest works
without matplotlib. ``verdict`` runs the verdict's protocol and the ablation on the same
executor, ``paired`` compares their runs seed by seed. ``cli`` and ``verdict_cli`` are
``run_experiments.py``.
"""
