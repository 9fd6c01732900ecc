"""``run_recbole_sam`` and ``load_data_and_model``: RecBole's quick-start recipes with
recbole-sam's config, trainers and checkpoints."""

import os
import time

from recbole_sam import run
from recbole_sam.checkpoint import find_resumable, new_run_id, result_path
from recbole_sam.config import SAMConfig
from recbole_sam.errors import ConfigError, Interrupted
from recbole_sam.loading import build_config, load_checkpoint, read_checkpoint


def run_recbole_sam(
    model=None, dataset=None, config_file_list=None, config_dict=None, saved=True, resume_from=None, verbose=False,
    command="",
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
        command (str): the command line, for the run's record.

    Returns:
        dict: ``best_valid_score``, ``valid_score_bigger``, ``best_valid_result``, ``test_result``
        as RecBole returns them, plus ``run_id``, ``checkpoint`` (the best model's path, or
        ``None``), ``history`` (``RunHistoryMixin.run_summary()``: validation curve, best and
        stopping epoch, whether the epoch cap was hit), ``record`` (the run's record, see
        ``recbole_sam.run``), ``result_file`` (where it was written) and, for S3Rec's two stages,
        ``pretrained_checkpoint``.

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
        return _pretrain_then_finetune(config, config_file_list, config_dict, saved, verbose, command)
    return run.train_and_test(config, saved, verbose, resume_from, config_file_list, command)


def _resumed_config(model, dataset, config_file_list, config_dict, resume_from):
    """The interrupted run's configuration and run id, from its ``-last.pth`` checkpoint."""
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


def _pretrain_then_finetune(config, config_file_list, config_dict, saved, verbose=False, command=""):
    """S3Rec's two stages in one call; each stage's trainer follows ``trainer`` and ``sam_stages``."""
    started = time.perf_counter()
    stage = dict(config_dict or {})
    model, dataset = config["model"], config["dataset"]
    pre_config = SAMConfig(model, dataset, config_file_list, config_dict=dict(stage, train_stage="pretrain"))
    pre_config["run_id"] = config["run_id"]
    trainer, train_data, _, _ = run.prepare(pre_config, verbose)
    try:
        trainer.pretrain(train_data, show_progress=pre_config["show_progress"])
    except KeyboardInterrupt:
        raise Interrupted("interrupted during S3Rec's pre-training; its finished epochs are saved as "
                          f"{trainer.pretrained_model_file(0)[:-len('1.pth')]}<epoch>.pth") from None
    pretrained = trainer.pretrained_model_file(pre_config["pretrain_epochs"] - 1)
    if not os.path.isfile(pretrained):  # pretrain_epochs is not a multiple of save_step
        trainer.save_pretrained_model(pre_config["pretrain_epochs"] - 1)

    fine_stage = dict(stage, train_stage="finetune", pre_model_path=pretrained)
    fine_config = SAMConfig(model, dataset, config_file_list, config_dict=fine_stage)
    fine_config["run_id"] = config["run_id"]
    result = run.train_and_test(fine_config, saved, verbose, None, config_file_list, command, started)
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
    loaded = load_checkpoint(model_file)
    loaded.model.eval()
    return loaded.config, loaded.model, loaded.dataset, loaded.train_data, loaded.valid_data, loaded.test_data
