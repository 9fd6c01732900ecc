"""``run_recbole_sam``: RecBole's ``run_recbole`` recipe with recbole-sam's config and trainers."""

import os
from logging import getLogger

from recbole.data import data_preparation
from recbole.utils import init_logger, init_seed, set_color

from recbole_sam.checkpoint import unique_checkpoint_path
from recbole_sam.config import SAMConfig
from recbole_sam.data.dataset import create_dataset
from recbole_sam.registry import get_model, get_trainer
from recbole_sam.threads import set_threads


def run_recbole_sam(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True):
    """Train and test a model, with the arguments and result of RecBole's ``run_recbole``.

    S3Rec without an explicit ``train_stage`` runs both of its stages: pre-training, then
    fine-tuning from the pre-trained checkpoint; the result is the fine-tuned model's.

    Args:
        model (str, optional): model name, e.g. ``"SASRec"``. Defaults to the config's ``model``.
        dataset (str, optional): dataset name, e.g. ``"ml-100k"``. Defaults to the config's ``dataset``.
        config_file_list (list of str, optional): YAML files, later ones win.
        config_dict (dict, optional): overrides that win over the files, e.g. ``{"trainer": "sam", "rho": 0.1}``.
        saved (bool): save the best model and test it (``True``), or test the last one.

    Returns:
        dict: ``best_valid_score``, ``valid_score_bigger``, ``best_valid_result``, ``test_result``
        as RecBole returns them, plus ``checkpoint`` (the saved model's path, or ``None``),
        ``history`` (``RunHistoryMixin.run_summary()``: validation curve, best and stopping
        epoch, whether the epoch cap was hit) and,
        for S3Rec's two stages, ``pretrained_checkpoint``.

    Raises:
        ConfigError: bad input (unknown model or trainer, rho <= 0, missing dataset, ...).
    """
    config = SAMConfig(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    if config["model"] == "S3Rec" and "train_stage" not in config.external_config_dict:
        return _pretrain_then_finetune(config, config_file_list, config_dict, saved)
    return _train_and_test(config, saved)


def _prepare(config):
    """Seed, logger, data, model and trainer, in RecBole's order."""
    trainer_class = get_trainer(config)  # refuse an unsupported model before loading any data
    set_threads(config["threads"])
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(config)
    dataset = create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    logger.info(model)
    return trainer_class(config, model), train_data, valid_data, test_data


def _train_and_test(config, saved):
    trainer, train_data, valid_data, test_data = _prepare(config)
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"]
    )
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])

    logger = getLogger()
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    return {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "checkpoint": trainer.saved_model_file if saved else None,
        "history": trainer.run_summary(),
    }


def _pretrain_then_finetune(config, config_file_list, config_dict, saved):
    """S3Rec's two stages in one call; each stage's trainer follows ``trainer`` and ``sam_stages``."""
    # RecBole names pre-training checkpoints S3Rec-<dataset>-<epoch>.pth: a folder of this
    # run's own keeps two runs from overwriting each other's.
    run_dir = unique_checkpoint_path(config["checkpoint_dir"], "S3Rec-pretrain")[: -len(".pth")]
    stage = dict(config_dict or {}, model=config["model"], dataset=config["dataset"])
    pre_config = SAMConfig(config_file_list=config_file_list, config_dict=dict(stage, train_stage="pretrain", checkpoint_dir=run_dir))
    trainer, train_data, _, _ = _prepare(pre_config)
    trainer.pretrain(train_data, show_progress=pre_config["show_progress"])
    pretrained = os.path.join(run_dir, f"S3Rec-{config['dataset']}-{pre_config['pretrain_epochs']}.pth")
    if not os.path.isfile(pretrained):  # pretrain_epochs is not a multiple of save_step
        trainer.save_pretrained_model(pre_config["pretrain_epochs"] - 1, pretrained)

    fine_config = SAMConfig(config_file_list=config_file_list, config_dict=dict(stage, train_stage="finetune", pre_model_path=pretrained))
    result = _train_and_test(fine_config, saved)
    result["pretrained_checkpoint"] = pretrained
    return result
