"""Shared test set-up: every test runs in its own temporary folder (RecBole writes log/,
saved/ and log_tensorboard/ into the working directory) on a small slice of ml-100k."""

import pytest
import torch

import recbole_sam  # noqa: F401  (applies the compatibility fixes before RecBole is used)

# The test models are tiny: one thread loses little, and it keeps the suite from slowing
# down many times over when the two cores are shared (OpenMP threads spin while they wait).
torch.set_num_threads(1)

# A small, fast configuration: ml-100k users with 20-25 ratings (~150 users), a one-layer
# 16-dimensional model, short sequences. Enough for metrics to move, a few seconds an epoch.
TINY_CONFIG = {
    "user_inter_num_interval": "[20,25]",
    "MAX_ITEM_LIST_LENGTH": 20,
    "hidden_size": 16,
    "inner_size": 32,
    "n_layers": 1,
    "n_heads": 1,
    "epochs": 2,
    "train_batch_size": 256,
    "eval_batch_size": 4096,
    "stopping_step": 2,
    "show_progress": False,
    "state": "WARNING",
    "seed": 7,
}


@pytest.fixture(scope="session", autouse=True)
def session_folder(tmp_path_factory):
    """The working folder of the whole session, before any test's: session fixtures (a local
    Ray, whose workers inherit the folder) write there, never into the checkout."""
    folder = tmp_path_factory.mktemp("session")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        yield folder


@pytest.fixture(autouse=True)
def _run_in_tmp_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def tiny_config():
    """A fresh copy of TINY_CONFIG that a test may change."""
    return dict(TINY_CONFIG)
