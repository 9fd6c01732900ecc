"""Hyperparameter search with Ray Tune: RecBole's ``.hyper`` params files, recbole-sam's
config and trainers, the validation metric as the objective, the test split once at the end.

``params`` reads the space (no Ray), ``spec`` and ``base`` check a search before it runs,
``trial`` is one trial, ``search`` the recipe (``run_search``), ``results`` and ``plots`` the
outputs, ``executor`` runs the experiment grids as Ray tasks, ``ray_compat`` is the one
place that knows Ray's versions, ``cli`` the command line. Ray is imported inside functions
only: ``import recbole_sam.tune`` does not import it.
"""

from recbole_sam.tune.search import SearchInterrupted, run_search

__all__ = ["run_search", "SearchInterrupted"]
