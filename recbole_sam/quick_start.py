"""``run_recbole_sam``: RecBole's ``run_recbole`` recipe with recbole-sam's config and trainers."""

from logging import getLogger

from recbole.data import data_preparation
from recbole.utils import init_logger, init_seed, set_color

from recbole_sam.config import SAMConfig
from recbole_sam.data.dataset import create_dataset
from recbole_sam.registry import get_model, get_trainer


def run_recbole_sam(model=None, dataset=None, config_file_list=None, config_dict=None, saved=True):
    """Train and test a model, with the arguments and result of RecBole's ``run_recbole``.

    Args:
        model (str, optional): model name, e.g. ``"SASRec"``. Defaults to the config's ``model``.
        dataset (str, optional): dataset name, e.g. ``"ml-100k"``. Defaults to the config's ``dataset``.
        config_file_list (list of str, optional): YAML files, later ones win.
        config_dict (dict, optional): overrides that win over the files, e.g. ``{"trainer": "sam", "rho": 0.1}``.
        saved (bool): save the best model and test it (``True``), or test the last one.

    Returns:
        dict: ``best_valid_score``, ``valid_score_bigger``, ``best_valid_result``, ``test_result``
        as RecBole returns them, plus ``checkpoint`` (the saved model's path, or ``None``).

    Raises:
        ConfigError: bad input (unknown model or trainer, rho <= 0, missing dataset, ...).
    """
    config = SAMConfig(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
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
    trainer = get_trainer(config)(config, model)

    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"]
    )
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])

    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    return {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "checkpoint": trainer.saved_model_file if saved else None,
    }
