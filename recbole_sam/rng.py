"""Capture and replay every random generator a training step may draw from."""

import random

import numpy as np
import torch


class RandomDraws:
    """The state of Python's, NumPy's and torch's (CPU and CUDA) global generators.

    SAM evaluates the same batch twice; restoring this state before the second pass gives
    it the same dropout masks, sampled negatives and augmentations as the first, and leaves
    the generators where a single pass would have left them.
    """

    def __init__(self):
        self.python = random.getstate()
        self.numpy = np.random.get_state()
        self.torch = torch.get_rng_state()
        # Only where CUDA is in use: asking an unused GPU for its state would start CUDA on it.
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None

    def restore(self):
        random.setstate(self.python)
        np.random.set_state(self.numpy)
        torch.set_rng_state(self.torch)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)
