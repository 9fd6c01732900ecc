"""``run_recbole_sam`` and ``load_data_and_model``: RecBole's quick-start recipes with
recbole-sam's config, trainers and checkpoints."""

import json
import logging
import os
from logging import getLogger

import colorlog
from recbole.data import data_preparation
from recbole.utils import init_seed, set_color
from recbole.utils.logger import RemoveColorFilter, log_colors_config

from recbole_sam.atomic import write_atomically
from recbole_sam.checkpoint import (
    find_resumable,
    last_checkpoint_path,
    new_run_id,
    remove_orphaned_partials,
    result_path,
)
from recbole_sam.config import SAMConfig, check_valid_metric
from recbole_sam.data.converters import check_atomic_files
from recbole_sam.data.dataset import create_dataset
from recbole_sam.errors import ConfigError, Interrupted
from recbole_sam.registry import get_model, get_trainer
from recbole_sam.threads import set_threads


def run_recbole_sam(
    model=None, dataset=None, config_file_list=None, config_dict=None, saved=True, resume_from=None, verbose=False
):
    """Train and test a model, with the arguments and result of RecBole's ``run_recbole``.

    S3Rec without an explicit ``train_stage`` runs both of its stages: pre-training, then
    fine-tuning from the pre-trained checkpoint; the result is the fine-tuned model's.

    Args:
        model (str, optional): model name, e.g. ``"SASRec"``. Defaults to the config's ``model``.
        dataset (str, optional): dataset name, e.g. ``"ml-100k"``. Defaults to the config's ``dataset``.
        config_file_list (list of str, optional): YAML files, later ones win.
        config_dict (dict, optional): overrides that win over the files, e.g. ``{"trainer": "sam", "rho": 0.1}``.
        saved (bool): save the best model and test it (``True``), or test the last one.
        resume_from (str, optional): a ``<run_id>-last.pth`` checkpoint of an interrupted run, or
            ``"latest"`` for the newest unfinished run of ``model`` on ``dataset``. The run goes on
            with the checkpoint's settings (``config_dict`` still wins, e.g. more ``epochs``).
        verbose (bool): also print the config, dataset and model dumps (always in the log file).

    Returns:
        dict: ``best_valid_score``, ``valid_score_bigger``, ``best_valid_result``, ``test_result``
        as RecBole returns them, plus ``run_id``, ``checkpoint`` (the best model's path, or
        ``None``), ``history`` (``RunHistoryMixin.run_summary()``: validation curve, best and
        stopping epoch, whether the epoch cap was hit), ``result_file`` and, for S3Rec's two
        stages, ``pretrained_checkpoint``.

    Raises:
        ConfigError: bad input (unknown model or trainer, rho <= 0, missing dataset, ...).
        Interrupted: Ctrl-C or SIGTERM during training; its message says how to resume.
    """
    if resume_from is not None:
        config, run_id, resume_from = _resumed_config(model, dataset, config_file_list, config_dict, resume_from)
    else:
        config = SAMConfig(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
        run_id, resume_from = new_run_id(config["model"], config["dataset"]), None
    config["run_id"] = run_id
    if config["model"] == "S3Rec" and "train_stage" not in config.external_config_dict:
        return _pretrain_then_finetune(config, config_file_list, config_dict, saved, verbose)
    return _train_and_test(config, saved, verbose, resume_from)


def _resumed_config(model, dataset, config_file_list, config_dict, resume_from):
    """The interrupted run's configuration and run id, from its ``-last.pth`` checkpoint."""
    from recbole_sam.analysis.loading import build_config, read_checkpoint

    if resume_from == "latest":
        config = SAMConfig(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
        resume_from = find_resumable(config["checkpoint_dir"], config["model"], config["dataset"])
    checkpoint = read_checkpoint(resume_from)
    if "random_state" not in checkpoint:
        raise ConfigError(f"resume_from: {resume_from!r} is not a last-epoch checkpoint (<run_id>-last.pth)")
    config = build_config(checkpoint["config"], config_dict=config_dict)
    if os.path.isfile(result_path(config["checkpoint_dir"], checkpoint["run_id"])):
        raise ConfigError(f"resume_from: run {checkpoint['run_id']} has finished (its result.json exists)")
    return config, checkpoint["run_id"], resume_from


def init_run_logger(config, verbose=False):
    """RecBole's console and file logging, the file named by the run id (``log/<model>/<run_id>.log``,
    appended to when a run resumes); the config, dataset and model dumps go to the file only,
    unless ``verbose``. RecBole's ``init_logger`` names the file by the second and, called twice
    in one process, keeps writing to the first file."""
    folder = os.path.join("log", config["model"])
    os.makedirs(folder, exist_ok=True)
    level = getattr(logging, str(config["state"] or "info").upper(), logging.INFO)
    to_file = logging.FileHandler(os.path.join(folder, f"{config['run_id']}.log"), encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)-15s %(levelname)s  %(message)s", "%a %d %b %Y %H:%M:%S"))
    to_file.addFilter(RemoveColorFilter())
    to_console = logging.StreamHandler()
    to_console.setFormatter(
        colorlog.ColoredFormatter("%(log_color)s%(asctime)-15s %(levelname)s  %(message)s", "%d %b %H:%M", log_colors=log_colors_config)
    )
    if not verbose:
        to_console.addFilter(lambda record: not getattr(record, "dump", False))
    for handler in (to_file, to_console):
        handler.setLevel(level)
    logging.basicConfig(level=level, handlers=[to_console, to_file], force=True)
    return getLogger()


def _check_before_writing(config):
    """The checks that need the files on disk, or that SAMConfig leaves to the run, made before
    the log and checkpoints are written."""
    check_valid_metric(config)
    check_atomic_files(config)
    if config["model"] == "S3Rec" and config["train_stage"] == "finetune":
        path = str(config["pre_model_path"])
        if not os.path.isfile(path):
            raise ConfigError(f"pre_model_path: no file {path!r} (train_stage finetune loads the pre-trained model)")


def _prepare(config, verbose=False):
    """Seed, logger, data, model and trainer, in RecBole's order."""
    trainer_class = get_trainer(config)  # refuse an unsupported model before loading any data
    _check_before_writing(config)
    set_threads(config["threads"])
    init_seed(config["seed"], config["reproducibility"])
    logger = init_run_logger(config, verbose)
    dump = {"extra": {"dump": True}}
    logger.info(config, **dump)
    dataset = create_dataset(config)
    logger.info(dataset, **dump)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    logger.info(model, **dump)
    remove_orphaned_partials(config["checkpoint_dir"])
    return trainer_class(config, model), train_data, valid_data, test_data


def _train_and_test(config, saved, verbose=False, resume_from=None):
    trainer, train_data, valid_data, test_data = _prepare(config, verbose)
    if resume_from:
        trainer.resume_checkpoint(resume_from)
    try:
        best_valid_score, best_valid_result = trainer.fit(
            train_data, valid_data, saved=saved, show_progress=config["show_progress"]
        )
    except KeyboardInterrupt:
        raise Interrupted(_resume_hint(trainer, saved)) from None
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])

    logger = getLogger()
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    result = {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "run_id": config["run_id"],
        "checkpoint": trainer.saved_model_file if saved else None,
        "history": trainer.run_summary(),
    }
    result["result_file"] = write_result(config, result)
    return result


def _resume_hint(trainer, saved):
    last = last_checkpoint_path(trainer.checkpoint_dir, trainer.run_id)
    if saved and os.path.isfile(last):
        return f"interrupted; resume with: python run_recbole_sam.py --resume_from={last}"
    return "interrupted before the first epoch ended; nothing to resume"


def write_result(config, result):
    """Write ``<checkpoint_dir>/<run_id>.result.json``: the settings, best epoch, valid and
    test metrics. Its presence also marks the run as finished (``--resume`` skips it).

    Returns:
        str: the file's path.
    """
    history = result["history"]
    record = {
        "run_id": config["run_id"],
        "model": config["model"],
        "dataset": config["dataset"],
        "settings": {key: value for key, value in config.external_config_dict.items()},
        "best_epoch": history["best_epoch"],
        "stopping_epoch": history["stopping_epoch"],
        "best_valid_result": dict(result["best_valid_result"] or {}),
        "test_result": dict(result["test_result"] or {}),
        "checkpoint": result["checkpoint"],
    }
    path = result_path(config["checkpoint_dir"], config["run_id"])

    def save(side_file):
        with open(side_file, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1, default=str)

    write_atomically(path, save)
    return path


def _pretrain_then_finetune(config, config_file_list, config_dict, saved, verbose=False):
    """S3Rec's two stages in one call; each stage's trainer follows ``trainer`` and ``sam_stages``."""
    stage = dict(config_dict or {}, model=config["model"], dataset=config["dataset"])
    pre_config = SAMConfig(config_file_list=config_file_list, config_dict=dict(stage, train_stage="pretrain"))
    pre_config["run_id"] = config["run_id"]
    trainer, train_data, _, _ = _prepare(pre_config, verbose)
    try:
        trainer.pretrain(train_data, show_progress=pre_config["show_progress"])
    except KeyboardInterrupt:
        raise Interrupted("interrupted during S3Rec's pre-training; its finished epochs are saved as "
                          f"{trainer.pretrained_model_file(0)[:-len('1.pth')]}<epoch>.pth") from None
    pretrained = trainer.pretrained_model_file(pre_config["pretrain_epochs"] - 1)
    if not os.path.isfile(pretrained):  # pretrain_epochs is not a multiple of save_step
        trainer.save_pretrained_model(pre_config["pretrain_epochs"] - 1)

    fine_config = SAMConfig(config_file_list=config_file_list, config_dict=dict(stage, train_stage="finetune", pre_model_path=pretrained))
    fine_config["run_id"] = config["run_id"]
    result = _train_and_test(fine_config, saved, verbose)
    result["pretrained_checkpoint"] = pretrained
    return result


def load_data_and_model(model_file):
    """Load a checkpoint with the data it was trained on, as RecBole's ``load_data_and_model``.

    Works for every model recbole-sam trains (SASRec with its BCE loss, CL4SRec, S3Rec) and on
    torch >= 2.6; RecBole's own ``full_sort_topk`` and ``full_sort_scores`` take its results.
    Nothing is logged or written.

    Args:
        model_file (str): a ``.pth`` checkpoint written by ``run_recbole_sam`` (or RecBole).

    Returns:
        tuple: ``config``, ``model`` (in eval mode), ``dataset``, ``train_data``,
        ``valid_data``, ``test_data``.

    Raises:
        ConfigError: unreadable file, or a checkpoint that does not fit the model or dataset.
    """
    from recbole_sam.analysis.loading import load_checkpoint

    loaded = load_checkpoint(model_file)
    loaded.model.eval()
    return loaded.config, loaded.model, loaded.dataset, loaded.train_data, loaded.valid_data, loaded.test_data
