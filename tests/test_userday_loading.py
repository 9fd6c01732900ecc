"""Load a saved model and recommend: recbole_sam.quick_start.load_data_and_model with RecBole's
own full_sort_topk, for every model recbole-sam trains."""

import pytest
import torch
from recbole.utils.case_study import full_sort_topk

import recbole_sam.run as run
from recbole_sam.quick_start import load_data_and_model, run_recbole_sam

RUNS = {
    "SASRec": {"loss_type": "BCE"},  # RecBole's own SASRec refuses BCE
    "CL4SRec": {},  # RecBole's loader would import lightgbm looking for it
    "S3Rec": {"pretrain_epochs": 1, "save_step": 1},
}


@pytest.mark.parametrize("model", list(RUNS))
def test_loaded_model_recommends_what_the_trained_model_did(model, tiny_config, monkeypatch):
    trained = []
    prepare = run.prepare

    def keep_trainer(config, verbose=False):
        prepared = prepare(config, verbose)
        trained.append(prepared)
        return prepared

    monkeypatch.setattr(run, "prepare", keep_trainer)
    result = run_recbole_sam(model, "ml-100k", config_dict=dict(tiny_config, epochs=1, **RUNS[model]))
    trainer, _, _, test_data = trained[-1]  # after evaluate(load_best_model=True): the best model
    users = [1, 2, 3]  # internal ids (0 is padding)
    expected = full_sort_topk(torch.tensor(users), trainer.model.eval(), test_data, k=10, device="cpu")

    config, loaded, dataset, _, _, loaded_test = load_data_and_model(result["checkpoint"])

    assert config["model"] == model and not loaded.training
    scores, items = full_sort_topk(torch.tensor(users), loaded, loaded_test, k=10, device="cpu")
    assert torch.equal(items, expected[1])
    torch.testing.assert_close(scores, expected[0])
    assert len(dataset.id2token(dataset.iid_field, items[0].numpy())) == 10
