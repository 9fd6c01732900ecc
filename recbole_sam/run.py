"""One run, from config to record: ``prepare`` (the checks before anything is written, the
logger, data, model and trainer), ``train_and_test``, and the run record.

Every run writes the same record, whoever starts it: the command line as
``<checkpoint_dir>/<run_id>.result.json``, a grid (``run_experiments.py``, the verdict) as
``<out>/runs/<name>.json``, a Tune trial in its trial folder. ``load_records`` reads them all,
the records of older versions included.
"""

import hashlib
import json
import logging
import os
import platform
import sys
import time
from logging import getLogger
from pathlib import Path

import colorlog
from recbole.data import data_preparation
from recbole.utils import init_seed, set_color
from recbole.utils.logger import RemoveColorFilter, log_colors_config

from recbole_sam.atomic import write_json
from recbole_sam.checkpoint import last_checkpoint_path, new_run_id, remove_orphaned_partials, result_path
from recbole_sam.checks import check_valid_metric
from recbole_sam.compat import plain_numbers
from recbole_sam.data.converters import check_atomic_files
from recbole_sam.data.dataset import create_dataset
from recbole_sam.errors import ConfigError, Interrupted
from recbole_sam.registry import get_model, get_trainer
from recbole_sam.threads import set_threads

# The keys of every record, in this order.
RECORD_KEYS = (
    "run_id",  # the record's name: a grid's <dataset>_<model>_<trainer>_..._seed=<n>, else the run id
    "settings",  # what tells the run from its siblings: dataset, model, trainer, seed and what a grid sweeps
    "config",  # the other overrides it was given (a grid's common options, a search's, the command line's)
    "config_files",  # the YAML files, as given
    "config_digests",  # {file: sha256 of its content when the run started}
    "command",
    "machine",
    "history",  # validation curve, best_epoch, stopping_epoch, epochs, hit_cap (None in old records)
    "best_valid_result",
    "test_result",  # {} for a Tune trial: a search tests its winner only
    "seconds",  # of training, earlier parts of a resumed run included
    "files",  # log, checkpoint, pretrained_checkpoint, tensorboard (absolute; None where not kept)
    "resumed_at_epoch",
    "finished",
)
IDENTITY_KEYS = ("dataset", "model", "trainer", "seed")
FILE_KEYS = ("log", "checkpoint", "pretrained_checkpoint", "tensorboard")


# A run


def init_run_logger(config, verbose=False):
    """RecBole's console and file logging, the file named by the run id (``log/<model>/<run_id>.log``,
    appended to when a run resumes); the config, dataset and model dumps go to the file only,
    unless ``verbose``. RecBole's ``init_logger`` names the file by the second and, called twice
    in one process, keeps writing to the first file."""
    level = getattr(logging, str(config["state"] or "info").upper(), logging.INFO)
    to_file = logging.FileHandler(log_path(config), encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)-15s %(levelname)s  %(message)s", "%a %d %b %Y %H:%M:%S"))
    to_file.addFilter(RemoveColorFilter())
    to_console = logging.StreamHandler()
    if on_terminal(to_console.stream):
        to_console.setFormatter(colorlog.ColoredFormatter(
            "%(log_color)s%(asctime)-15s %(levelname)s  %(message)s", "%d %b %H:%M", log_colors=log_colors_config
        ))
    else:  # a file or a pipe: no colour codes, RecBole's set_color ones included
        to_console.setFormatter(logging.Formatter("%(asctime)-15s %(levelname)s  %(message)s", "%d %b %H:%M"))
        to_console.addFilter(RemoveColorFilter())
    if not verbose:
        to_console.addFilter(lambda record: not getattr(record, "dump", False))
    for handler in (to_file, to_console):
        handler.setLevel(level)
    logging.basicConfig(level=level, handlers=[to_console, to_file], force=True)
    return getLogger()


def on_terminal(stream):
    """bool: whether ``stream`` is a terminal (not a file or pipe, nor a stand-in without
    ``isatty``, such as the one Ray puts in its workers)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # ValueError: a closed file
        return False


def log_path(config):
    """str: ``log/<model>/<run_id>.log`` (its folder is created)."""
    folder = os.path.join("log", config["model"])
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"{config['run_id']}.log")


def check_before_writing(config):
    """The checks that need the files on disk, or that SAMConfig leaves to the run, made before
    the log and checkpoints are written.

    Raises:
        ConfigError: the first bad value, file or column.
    """
    check_valid_metric(config)
    check_atomic_files(config)
    if config["model"] == "S3Rec" and config["train_stage"] == "finetune":
        path = str(config["pre_model_path"] or "")
        if not path:
            raise ConfigError("pre_model_path: not set; train_stage finetune loads a pre-trained model: give its file")
        if not os.path.isfile(path):
            raise ConfigError(f"pre_model_path: no file {path!r} (train_stage finetune loads the pre-trained model)")


def prepare(config, verbose=False):
    """Seed, logger, data, model and trainer, in RecBole's order, after every check.

    A config without a ``run_id`` gets a new one: it names the log, the tensorboard folder and
    the checkpoints.

    Args:
        config (SAMConfig): the run's configuration.
        verbose (bool): also print the config, dataset and model dumps (always in the log file).

    Returns:
        tuple: ``trainer``, ``train_data``, ``valid_data``, ``test_data``.

    Raises:
        ConfigError: bad input, before anything is written.
    """
    trainer_class = get_trainer(config)  # refuse an unsupported model before loading any data
    check_before_writing(config)
    if not config["run_id"]:
        config["run_id"] = new_run_id(config["model"], config["dataset"])
    set_threads(config["threads"])
    if not on_terminal(sys.stderr):  # tqdm's bars in a file or pipe are hundreds of lines of carriage returns
        config["show_progress"] = False
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


def train_and_test(config, saved=True, verbose=False, resume_from=None, config_file_list=None, command="", started=None):
    """Train, test, and write the run's record (``<checkpoint_dir>/<run_id>.result.json``).

    Args:
        config (SAMConfig): the run's configuration, with its ``run_id``.
        saved (bool): save the best model and test it (``True``), or test the last one.
        verbose (bool): also print the config, dataset and model dumps.
        resume_from (str, optional): a ``-last.pth`` checkpoint to go on from.
        config_file_list (list of str, optional): the YAML files, for the record.
        command (str): the command line, for the record.
        started (float, optional): ``time.perf_counter()`` when the run began (S3Rec: its
            pre-training); default now.

    Returns:
        dict: see ``quick_start.run_recbole_sam``; ``record`` is the record written.

    Raises:
        Interrupted: Ctrl-C or SIGTERM during training; its message says how to resume.
    """
    started = time.perf_counter() if started is None else started
    trainer, train_data, valid_data, test_data = prepare(config, verbose)
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
    logger.info(set_color("best valid ", "yellow") + f": {plain_numbers(best_valid_result)}")
    logger.info(set_color("test result", "yellow") + f": {plain_numbers(test_result)}")
    result = {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "run_id": config["run_id"],
        "checkpoint": trainer.saved_model_file if saved else None,
        "history": trainer.run_summary(),
    }
    seconds = time.perf_counter() - started + getattr(trainer, "_seconds_before", 0.0)
    result["record"] = run_record(config, result, config_file_list, command, seconds)
    result["result_file"] = result_path(config["checkpoint_dir"], config["run_id"])
    write_json(result["result_file"], result["record"])
    return result


def _resume_hint(trainer, saved):
    last = last_checkpoint_path(trainer.checkpoint_dir, trainer.run_id)
    if saved and os.path.isfile(last):
        return f"interrupted; resume with: python run_recbole_sam.py --resume_from={last}"
    return "interrupted before the first epoch ended; nothing to resume"


# The record


def machine():
    """dict: where the numbers were made."""
    import torch

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        # The GPU this process trained on; None when it used none (CUDA never started).
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_initialized() else None,
    }


def describe_machine(about):
    """str: ``machine()``'s dict in one line."""
    gpu = f", GPU {about['gpu']}" if about.get("gpu") else ""
    return (
        f"{about['platform']}, {about['cpu_count']} CPU cores visible, Python {about['python']}, "
        f"torch {about['torch']}, {about['threads']} threads{gpu}"
    )


def file_digest(path):
    """str: the sha256 of a file's content; None when there is no such file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if os.path.isfile(path) else None


def _floats(metrics):
    return {key: float(value) for key, value in (metrics or {}).items()}


def make_record(run_id, settings, result, config=None, config_files=None, command="", seconds=0.0, files=None,
                resumed_at_epoch=None):  # fmt: skip
    """A run record (``RECORD_KEYS``) from what a run returned.

    Args:
        run_id (str): the record's name.
        settings (dict): what tells the run from its siblings (see ``RECORD_KEYS``).
        result (dict): ``best_valid_result``, ``test_result`` and, when known, ``history``.
        config (dict, optional): the run's other overrides.
        config_files (list of str, optional): its YAML files.
        command (str): the command line.
        seconds (float): training time.
        files (dict, optional): paths by ``FILE_KEYS``; missing ones are None.
        resumed_at_epoch (int, optional): the epoch a resumed run went on from.

    Returns:
        dict: the record, JSON-ready.
    """
    config_files = [str(file) for file in config_files or []]
    record = {  # in the order of RECORD_KEYS
        "run_id": run_id,
        "settings": dict(settings),
        "config": dict(config or {}),
        "config_files": config_files,
        "config_digests": {file: file_digest(file) for file in config_files},
        "command": command,
        "machine": machine(),
        "history": result.get("history"),
        "best_valid_result": _floats(result.get("best_valid_result")),
        "test_result": _floats(result.get("test_result")),
        "seconds": round(seconds, 3),
        "files": {key: (files or {}).get(key) for key in FILE_KEYS},
        "resumed_at_epoch": resumed_at_epoch,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    return json.loads(json.dumps(record, default=str))  # as it reads back


def run_record(config, result, config_file_list=None, command="", seconds=0.0):
    """The record of one run of ``train_and_test`` (or of a Tune trial, without a test result):
    its settings are the dataset, model, trainer and seed, its config the other keys set."""
    settings = {key: config[key] for key in IDENTITY_KEYS}
    given = {key: value for key, value in config.external_config_dict.items() if key not in settings}
    files = {
        "log": os.path.abspath(log_path(config)),
        "checkpoint": os.path.abspath(result["checkpoint"]) if result.get("checkpoint") else None,
        "pretrained_checkpoint": _pretrained_checkpoint(config),
        "tensorboard": os.path.abspath(os.path.join("log_tensorboard", config["run_id"])),
    }
    return make_record(config["run_id"], settings, result, given, config_file_list, command, seconds, files)


def _pretrained_checkpoint(config):
    if config["model"] == "S3Rec" and config["train_stage"] == "finetune" and config["pre_model_path"]:
        return os.path.abspath(config["pre_model_path"])
    return None


def write_record(path, record):
    """Write a record in one rename: a crash leaves the whole record or none."""
    write_json(path, record)


def read_record(path):
    """One record, in today's schema whatever version wrote it.

    Raises:
        ConfigError: the file cannot be read or is not JSON.
    """
    try:
        stored = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigError(f"record: cannot read {path} ({error})") from None
    return upgrade_record(stored)


def upgrade_record(stored):
    """A record in today's schema, whatever version wrote it: the grids' records before the one
    schema have no ``files`` (``checkpoints``: the best and S3Rec's pre-trained model, when
    kept), no digests, and, the oldest, no ``history`` or ``machine``."""
    record = {key: stored.get(key) for key in RECORD_KEYS}
    kept = list(stored.get("checkpoints") or []) + [None, None]
    files = stored.get("files") or {"checkpoint": kept[0], "pretrained_checkpoint": kept[1]}
    record["files"] = {key: files.get(key) for key in FILE_KEYS}
    record["config"] = record["config"] or {}
    record["config_files"] = record["config_files"] or []
    record["config_digests"] = record["config_digests"] or {file: None for file in record["config_files"]}
    return record


def load_records(folder, run_ids=None):
    """The records in ``folder`` (``<out>/runs``), by file name, in today's schema.

    Args:
        folder (str or Path): a folder of ``<run_id>.json`` records.
        run_ids (list of str, optional): only these (all by default).

    Returns:
        list of dict: the records.
    """
    paths = sorted(Path(folder).glob("*.json"))
    if run_ids is not None:
        wanted = set(run_ids)
        paths = [path for path in paths if path.stem in wanted]
    return [read_record(path) for path in paths]
