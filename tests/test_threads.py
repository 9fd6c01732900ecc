"""The torch thread count is chosen on purpose (recbole_sam.threads) and set by every run."""

import torch

from recbole_sam.threads import default_threads, set_threads


def test_default_threads_leave_room_on_small_machines():
    assert default_threads(cores=1) == 1
    assert default_threads(cores=2) == 1  # two threads on a busy 2-core machine spin-wait
    assert default_threads(cores=6) == 3
    assert default_threads(cores=64) == 8


def test_set_threads_sets_torch_and_returns_the_count():
    before = torch.get_num_threads()
    try:
        assert set_threads(2) == 2 and torch.get_num_threads() == 2
        assert set_threads(None) == default_threads() and torch.get_num_threads() == default_threads()
    finally:
        torch.set_num_threads(before)


def test_a_run_uses_the_threads_property(tiny_config):
    from recbole_sam.quick_start import run_recbole_sam

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        run_recbole_sam("SASRec", "ml-100k", config_dict=dict(tiny_config, epochs=1, threads=2))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
