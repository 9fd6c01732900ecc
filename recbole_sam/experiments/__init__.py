"""The SAMRec paper's experiments (RecSys'23, Tables 1-2, Figures 2-3) as resumable grids of runs.

``runner`` expands a grid and executes it, one JSON record per finished run; ``report`` turns
records into CSV and Markdown (mean ± std over seeds, improvement of +SAM over its backbone);
``plots`` draws the rho and sparsity sweeps and is not imported here, so that the rest works
without matplotlib. ``run_experiments.py`` is the command line.
"""
