"""properties/paper/S3Rec-pretrain.yaml and S3Rec-finetune.yaml: they load through our config on
top of a dataset's paper file, say what the reference's run_pretrain.py / run_finetune_full.py
defaults say, and run (one tiny fine-tuning epoch from a reference-format checkpoint)."""

import re
from pathlib import Path

import pytest
import torch
import yaml

from recbole_sam.config import SAMConfig
from recbole_sam.property_files import properties_dir
from recbole_sam.data.converters import convert_s3rec
from recbole_sam.quick_start import run_recbole_sam

from test_s3rec_reference import reference_state, write_reference_dataset

PAPER = properties_dir() / "paper"
FILES = {stage: str(PAPER / f"S3Rec-{stage}.yaml") for stage in ("pretrain", "finetune")}
DATASET_FILE = str(PAPER / "Beauty.yaml")
# The reference's defaults (run_pretrain.py:30-60, run_finetune_full.py:29-48).
REFERENCE = {
    "hidden_size": 64, "n_layers": 2, "n_heads": 2, "inner_size": 256, "hidden_dropout_prob": 0.5,
    "attn_dropout_prob": 0.5, "hidden_act": "gelu", "initializer_range": 0.02, "MAX_ITEM_LIST_LENGTH": 50,
    "learning_rate": 0.001, "weight_decay": 0.0,
}
PRETRAIN = {"train_stage": "pretrain", "train_batch_size": 100, "mask_ratio": 0.2, "aap_weight": 0.2,
            "mip_weight": 1.0, "map_weight": 1.0, "sp_weight": 0.5, "pretrain_epochs": 300, "save_step": 10,
            "s3rec_mask_last": True, "s3rec_fast_path": True, "s3rec_pretrain_samples": "reference",
            "s3rec_negative_segments": "all_users"}
FINETUNE = {"train_stage": "finetune", "pre_model_format": "reference", "loss_type": "BCE", "train_scheme": "sequence",
            "neg_exclude": "user", "padding_side": "left", "train_batch_size": 256, "epochs": 200, "valid_metric": "NDCG@20"}


@pytest.fixture
def tiny(tmp_path):
    convert_s3rec("Tiny", write_reference_dataset(tmp_path / "src"), "data")
    path = tmp_path / "Tiny-epochs-150.pt"
    torch.save(reference_state(hidden=64, layers=2, window=50), path)
    return str(path)


@pytest.mark.parametrize("stage, expected", [("pretrain", PRETRAIN), ("finetune", FINETUNE)])
def test_paper_files_load_with_the_references_defaults(stage, expected, tiny):
    config = SAMConfig("S3Rec", "Tiny", config_file_list=[DATASET_FILE, FILES[stage]],
                       config_dict={"data_path": "data", "pre_model_path": tiny})
    for key, value in {**REFERENCE, **expected}.items():
        assert config[key] == value, key


@pytest.mark.parametrize("stage", ["pretrain", "finetune"])
def test_every_line_says_why(stage):
    lines = [line for line in Path(FILES[stage]).read_text().splitlines() if line and not line.startswith("#")]
    assert lines and all(re.search(r"#\s*\((str|int|float|list|bool)\) \S", line) for line in lines)
    # Values that follow the reference name the file (and line) they follow.
    cited = [line for line in lines if not line.startswith(("train_stage", "loss_type: CE", "sam_stages"))]
    assert all(re.search(r"\w+\.py(:\d+)?", line) for line in cited), cited
    assert set(yaml.safe_load(Path(FILES[stage]).read_text())) >= set(PRETRAIN if stage == "pretrain" else FINETUNE) - {"epochs", "valid_metric", "train_batch_size", "s3rec_fast_path"}


def test_sam_fine_tunes_in_the_paper_setting_from_a_reference_checkpoint(tiny):
    settings = {"data_path": "data", "pre_model_path": tiny, "trainer": "sam", "epochs": 1, "eval_batch_size": 64,
                "show_progress": False, "state": "WARNING", "topk": [5, 10], "valid_metric": "NDCG@10"}  # 15 items: no top 20
    result = run_recbole_sam("S3Rec", "Tiny", config_file_list=[DATASET_FILE, FILES["finetune"]], config_dict=settings)
    assert result["record"]["files"]["pretrained_checkpoint"] == tiny
    assert 0 <= result["test_result"]["hit@10"] <= 1 and "unmasked_hit@10" in result["test_result"]


def test_sam_pre_trains_in_the_paper_setting(tiny):
    # The reference's samples and negative segments, one tiny epoch with SAM, and its checkpoint.
    settings = {"data_path": "data", "trainer": "sam", "pretrain_epochs": 1, "save_step": 1, "show_progress": False,
                "state": "WARNING", "checkpoint_dir": "saved", "topk": [5, 10], "valid_metric": "NDCG@10"}
    run_recbole_sam("S3Rec", "Tiny", config_file_list=[DATASET_FILE, FILES["pretrain"]], config_dict=settings)
    assert len(list(Path("saved").glob("S3Rec-Tiny-*-pretrain-1.pth"))) == 1
