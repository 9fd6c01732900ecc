"""Every compatibility fix between RecBole 1.2.1 and today's torch and NumPy, in one place.

Importing this module applies the process-wide ones (NumPy 1 aliases, anomaly detection off,
library FutureWarnings and RecBole's one SyntaxWarning filtered); the checkpoint fix is a
context manager used where RecBole calls ``torch.load``. Pins that keep the install itself
working live in setup.py and are explained in docs/recbole_fixes.md and docs/install.md.
"""

import warnings
from contextlib import contextmanager

import numpy as np
import torch

# RecBole 1.2.1 uses NumPy 1 names that NumPy 2 removed; with these three aliases it runs on
# NumPy 2 with identical metrics. Added only where missing, so NumPy 1 is left untouched.
for _alias, _target in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
    if _alias not in np.__dict__:
        setattr(np, _alias, _target)

# Deprecation notices from inside RecBole and from torch about RecBole's calls (pandas chained
# assignment, torch.cuda.amp.GradScaler): nothing a user can act on, ~17 lines every run.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole(\.|$)")
warnings.filterwarnings("ignore", message=r".*torch\.cuda\.amp\.GradScaler.*", category=FutureWarning)

# RecBole's dien.py has a docstring with an invalid escape sequence ('\p'); Python >= 3.12 reports
# it as a SyntaxWarning (4 lines on stderr) whenever it compiles the file, i.e. every run where
# bytecode is not written. Only that warning, from that file, and before RecBole's models are
# imported below. (Compile-time warnings name their module by the file's path.)
warnings.filterwarnings(
    "ignore",
    message=r"invalid escape sequence",
    category=SyntaxWarning,
    module=r".*recbole[\\/]model[\\/]sequential_recommender[\\/]dien\Z",
)

# RecBole's SINE module calls torch.autograd.set_detect_anomaly(True) at import time, and
# importing any RecBole sequential model imports it. Anomaly detection makes every backward
# pass slower (1.1-2.7x per SASRec epoch in our measurements), so import it now, once, and
# switch it off again.
import recbole.model.sequential_recommender  # noqa: E402,F401

torch.autograd.set_detect_anomaly(False)


def plain_numbers(result):
    """A metric -> value dict (RecBole's results) with NumPy scalars as Python numbers, for printing:
    NumPy 2 prints ``np.float64(0.0127)`` where NumPy 1 printed ``0.0127``.

    Args:
        result (dict, optional): RecBole's result; None gives ``{}``.

    Returns:
        dict: the same keys, in the same order.
    """
    return {key: value.item() if isinstance(value, np.generic) else value for key, value in (result or {}).items()}


@contextmanager
def trusted_torch_load():
    """Let RecBole's own ``torch.load`` calls read its checkpoints on torch >= 2.6.

    RecBole pickles its whole ``Config`` into every checkpoint; torch >= 2.6 loads with
    ``weights_only=True`` by default and refuses it. Inside this block a ``torch.load`` call
    that does not choose ``weights_only`` itself loads the full pickle, which is only right
    for checkpoints this package or its user wrote.
    """
    original = torch.load

    def load(*args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return original(*args, **kwargs)

    torch.load = load
    try:
        yield
    finally:
        torch.load = original


# RecBole's graph models (LightGCN, NGCF, SGL's base, GCMC, SpectralCF, NCL, KGIN, MCCLK) fill
# their adjacency matrix with ``dok_matrix._update(data_dict)``, a private method that SciPy
# removed when dok_matrix stopped being a dict (SciPy >= 1.12: AttributeError). Where it is
# missing, give it back, built on the public fancy-index assignment ``A[rows, cols] = values``,
# which has dict.update's meaning: each (row, col) key set to its value, the rest unchanged.
def _dok_update(self, data):
    """``A._update({(row, col): value, ...})``, as RecBole's graph models call it."""
    if not data:
        return
    keys = list(data.keys())
    rows = np.fromiter((key[0] for key in keys), dtype=np.int64, count=len(keys))
    cols = np.fromiter((key[1] for key in keys), dtype=np.int64, count=len(keys))
    self[rows, cols] = np.fromiter(data.values(), dtype=self.dtype, count=len(keys))


def _restore_dok_update():
    from scipy.sparse import _dok

    base = getattr(_dok, "_dok_base", None)
    if base is not None and not hasattr(base, "_update"):
        base._update = _dok_update


_restore_dok_update()

# The same models build their sparse tensors with torch.sparse.FloatTensor, deprecated since
# torch 2.1: a notice about RecBole's code, nothing a user can act on.
warnings.filterwarnings("ignore", message=r"torch\.sparse\.SparseTensor\(.*is deprecated", category=UserWarning)
