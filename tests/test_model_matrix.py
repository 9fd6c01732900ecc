"""SAM on one RecBole model of each family we can run here, one tiny epoch each, and the SciPy
fix that RecBole's graph models need (recbole_sam/compat.py)."""

import types

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from recbole.model.general_recommender import LightGCN

import recbole_sam.compat  # noqa: F401  (the dok_matrix fix)
from recbole_sam.config import SAMConfig
from recbole_sam.errors import ConfigError
from recbole_sam.run import prepare

TINY = {
    "user_inter_num_interval": "[20,25]",
    "epochs": 1,
    "train_batch_size": 512,
    "embedding_size": 8,
    "hidden_size": 8,
    "inner_size": 16,
    "n_layers": 1,
    "n_heads": 1,
    "MAX_ITEM_LIST_LENGTH": 10,
    "show_progress": False,
    "state": "ERROR",
    "seed": 7,
    "trainer": "sam",
    "rho": 0.1,
}
# Context-aware models predict a label: ratings >= 4 are positives, rows split at random.
CONTEXT = {
    "threshold": {"rating": 4},
    "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": None, "mode": "labeled"},
    "metrics": ["AUC", "LogLoss"],
    "valid_metric": "AUC",
    "train_neg_sample_args": None,
    "mlp_hidden_size": [8],
    "load_col": {"inter": ["user_id", "item_id", "rating"], "user": ["user_id", "age", "gender"], "item": ["item_id"]},
}

MATRIX = [
    ("BPR", {}),  # general
    ("LightGCN", {}),  # general, graph (needs the SciPy fix)
    ("NGCF", {}),  # general, graph (needs the SciPy fix)
    ("SGL", {}),  # general, graph with augmentations
    ("GRU4Rec", {}),  # sequential
    ("BERT4Rec", {}),  # sequential
    ("NARM", {}),  # sequential
    ("DeepFM", CONTEXT),  # context-aware
    # The variants away from SASRec.
    ("BPR", {"sam_variant": "helen"}),
    ("NGCF", {"sam_params": "dense", "sam_variant": "asam"}),  # (LightGCN is all embeddings: dense selects nothing)
    ("BERT4Rec", {"sam_params": "norm"}),
    ("GRU4Rec", {"sam_variant": "saf", "epochs": 2}),
]


def parameters(model):
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("model, settings", MATRIX, ids=[f"{m}-{'-'.join(map(str, s.values())) or 'sam'}"[:40] for m, s in MATRIX])
def test_each_model_family_trains_an_epoch_with_the_sam_trainer(model, settings):
    config = SAMConfig(model, "ml-100k", config_dict=dict(TINY, **settings))
    config["run_id"] = f"matrix-{model}"
    trainer, train_data, valid_data, _ = prepare(config)
    before = parameters(trainer.model)
    trainer.fit(train_data, saved=False)
    after = parameters(trainer.model)
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
    last = trainer.sam_history[config["epochs"] - 1]
    if config["sam_variant"] == "saf":
        assert last["trajectory"] >= 0 and "ascents" not in last
    else:  # one ascent per batch: SAM ran, not RecBole's plain step
        assert last["ascents"] == len(train_data) and np.isfinite(last["sharpness"])
    result = trainer.evaluate(valid_data, load_best_model=False)  # RecBole's evaluation runs after SAM
    assert all(np.isfinite(value) for value in result.values())


def test_knowledge_aware_models_are_refused_with_a_clear_error():
    # RecBole's KGTrainer passes its own loss functions, past the SAM step: refused, not run plainly.
    config = SAMConfig("KGCN", "ml-100k", config_dict=dict(TINY))
    config["run_id"] = "matrix-KGCN"
    with pytest.raises(ConfigError, match="model: 'KGCN' needs RecBole's KGTrainer"):
        prepare(config)


def test_dok_update_fix_builds_the_adjacency_recbole_means_on_a_tiny_graph():
    # 2 users, 3 items; user 0 rated items 0 and 2, user 1 rated item 1.
    n_users, n_items = 2, 3
    R = np.array([[1, 0, 1], [0, 1, 0]], dtype=np.float32)
    A = np.block([[np.zeros((2, 2)), R], [R.T, np.zeros((3, 3))]])  # the bipartite adjacency, by hand
    degree = A.sum(axis=1) + 1e-7  # RecBole's epsilon
    expected = A / np.sqrt(np.outer(degree, degree))  # D^-1/2 A D^-1/2

    # RecBole's own call: dok_matrix._update(dict), which SciPy >= 1.12 no longer has.
    dok = sp.dok_matrix((5, 5), dtype=np.float32)
    dok._update({(0, 2): 1, (0, 4): 1, (1, 3): 1, (2, 0): 1, (4, 0): 1, (3, 1): 1})
    np.testing.assert_array_equal(dok.toarray(), A)

    # And LightGCN's normalised matrix, built by RecBole's unchanged method.
    fake = types.SimpleNamespace(n_users=n_users, n_items=n_items, interaction_matrix=sp.coo_matrix(R))
    norm_adj = LightGCN.get_norm_adj_mat(fake)
    np.testing.assert_allclose(norm_adj.to_dense().numpy(), expected, rtol=1e-6)

