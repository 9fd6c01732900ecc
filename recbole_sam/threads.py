"""How many CPU threads torch uses in one training process, chosen on purpose.

torch starts one OpenMP thread per core. On a small machine that also runs other jobs (a
second training, a helper, the test suite), threads that find no free core spin-wait: with two
threads on a busy 2-core machine we measured epochs 5-9x slower than with one. So the
default is conservative: one thread on machines with at most 2 cores, otherwise half the
cores (at most 8), leaving room for data loading and a second process. ``threads: N`` (or
``--threads=N``) overrides it.
"""

import os

import torch


def available_cores():
    """int: the cores this process may run on (its CPU affinity, where the OS tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_threads(cores=None):
    """int: 1 on <= 2 cores, else half of them, at most 8."""
    cores = available_cores() if cores is None else cores
    return 1 if cores <= 2 else min(cores // 2, 8)


def set_threads(threads=None):
    """Set torch's intra-op threads to ``threads`` (``None``: ``default_threads()``).

    Returns:
        int: the number of threads set.
    """
    threads = default_threads() if threads is None else int(threads)
    torch.set_num_threads(threads)
    return threads
