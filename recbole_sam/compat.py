"""Every compatibility fix between RecBole 1.2.1 and today's torch, in one place.

Importing this module applies the process-wide one (anomaly detection off); the checkpoint
fix is a context manager used where RecBole calls ``torch.load``. Pins that keep the install
itself working (numpy<2, pandas<3, setuptools<82, ray<=2.6.3, pyarrow<26) live in setup.py
and are explained in the README.
"""

from contextlib import contextmanager

import torch

# RecBole's SINE module calls torch.autograd.set_detect_anomaly(True) at import time, and
# importing any RecBole sequential model imports it. Anomaly detection makes every backward
# pass slower (1.1-2.7x per SASRec epoch in our measurements), so import it now, once, and
# switch it off again.
import recbole.model.sequential_recommender  # noqa: E402,F401

torch.autograd.set_detect_anomaly(False)


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
