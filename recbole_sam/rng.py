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


class DataDraws:
    """The data draws of one batch (negatives, augmentations, masks), kept in the first SAM pass
    so that the second pass can reuse them while its dropout masks are drawn afresh
    (``sam_second_pass_draws: fresh_dropout``, SAM as a loop around a data loader runs it).

    A model routes each such draw through ``data_draw(model, draw)``; outside a SAM step, or in
    any other mode, that is just ``draw()``.
    """

    def __init__(self):
        self.kept = []
        self.replaying = None  # the index of the next kept draw, once the second pass starts

    def take(self, draw):
        if self.replaying is None:
            self.kept.append(draw())
            return self.kept[-1]
        self.replaying += 1
        return self.kept[self.replaying - 1]

    def replay(self):
        self.replaying = 0


def data_draw(model, draw):
    """``draw()``, or the same draw of the first pass when the SAM trainer replays ``model``'s
    data draws (``model.data_draws``, a ``DataDraws``, set only during a SAM step)."""
    book = getattr(model, "data_draws", None)
    return draw() if book is None else book.take(draw)
