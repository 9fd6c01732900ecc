"""S3Rec's two stages with the plain and the SAM trainer."""

import os

import pytest
import torch
from recbole.data import data_preparation
from recbole.model.sequential_recommender.s3rec import S3Rec as RecBoleS3Rec
from recbole.utils import init_seed

from recbole_sam.config import SAMConfig
from recbole_sam.data.dataset import create_dataset
from recbole_sam.errors import ConfigError
from recbole_sam.quick_start import run_recbole_sam
from recbole_sam.registry import get_model, get_trainer
from recbole_sam.rng import RandomDraws
from recbole_sam.trainer import PlainS3RecTrainer, SAMS3RecTrainer

STAGES = {"pretrain_epochs": 1, "save_step": 1, "epochs": 1}


@pytest.mark.parametrize("trainer", ["plain", "sam"])
def test_one_call_pretrains_then_finetunes_from_that_checkpoint(trainer, tiny_config, monkeypatch):
    loaded = []
    original = RecBoleS3Rec.load_state_dict

    def spy(self, state_dict, *args, **kwargs):
        loaded.append({name: tensor.clone() for name, tensor in state_dict.items()})
        return original(self, state_dict, *args, **kwargs)

    monkeypatch.setattr(RecBoleS3Rec, "load_state_dict", spy)
    result = run_recbole_sam("S3Rec", "ml-100k", config_dict=dict(tiny_config, trainer=trainer, **STAGES))

    pretrained = result["pretrained_checkpoint"]
    assert os.path.isfile(pretrained) and os.path.isfile(result["checkpoint"])
    assert result["test_result"]["hit@10"] > 0
    expected = torch.load(pretrained, weights_only=False)["state_dict"]
    assert loaded, "fine-tuning did not load a pre-trained model"
    assert loaded[0].keys() == expected.keys()
    assert all(torch.equal(loaded[0][name], expected[name]) for name in expected)


@pytest.mark.parametrize(
    "trainer, sam_stages, stage, expected",
    [
        ("sam", ["pretrain", "finetune"], "pretrain", SAMS3RecTrainer),
        ("sam", ["pretrain", "finetune"], "finetune", SAMS3RecTrainer),
        ("sam", ["finetune"], "pretrain", PlainS3RecTrainer),
        ("sam", "finetune", "finetune", SAMS3RecTrainer),
        ("sam", "[finetune]", "pretrain", PlainS3RecTrainer),  # as the command line passes it
        ("plain", ["pretrain", "finetune"], "pretrain", PlainS3RecTrainer),
    ],
)
def test_sam_stages_choose_each_stages_trainer(trainer, sam_stages, stage, expected):
    config = SAMConfig("S3Rec", "ml-100k", config_dict={"trainer": trainer, "sam_stages": sam_stages, "train_stage": stage})
    assert get_trainer(config) is expected


def test_both_sam_passes_see_the_same_pretraining_draw(tiny_config):
    config = SAMConfig("S3Rec", "ml-100k", config_dict=dict(tiny_config, train_stage="pretrain"))
    init_seed(config["seed"], True)
    train_data = data_preparation(config, create_dataset(config))[0]
    model = get_model("S3Rec")(config, train_data._dataset)
    batch = next(iter(train_data))
    draws = RandomDraws()
    first = model.calculate_loss(batch)
    draws.restore()
    second = model.calculate_loss(batch)
    third = model.calculate_loss(batch)  # a new draw of masks, negatives and segments
    assert torch.equal(first, second)
    assert not torch.equal(first, third)


@pytest.mark.parametrize(
    "override, message",
    [
        ({"item_attribute": "genre"}, "item_attribute: dataset 'ml-100k' has no item field 'genre'"),
        ({"train_stage": "finetune", "pre_model_path": "nowhere.pth"}, "pre_model_path: no file 'nowhere.pth'"),
        ({"sam_stages": ["warmup"]}, "sam_stages: must be a list of pretrain, finetune"),
    ],
)
def test_bad_s3rec_input(override, message, tiny_config):
    with pytest.raises(ConfigError, match=message):
        run_recbole_sam("S3Rec", "ml-100k", config_dict=dict(tiny_config, **STAGES, **override))
    assert not any(name.endswith(".pth") for _, _, files in os.walk("saved") for name in files)
