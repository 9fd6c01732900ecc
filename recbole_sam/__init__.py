"""recbole-sam: train RecBole's sequential recommenders with Sharpness-Aware Minimization."""

from recbole_sam import compat  # noqa: F401  (applied once, on import: see compat.py)

__version__ = "0.1.0"
