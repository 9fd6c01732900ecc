"""The checks of a run's settings before anything is written: option values, dataset files,
unknown keys. Each raises ``ConfigError`` with one line naming the key and its allowed values
(unknown keys only warn, unless ``strict``). ``SAMConfig`` (config.py) calls them; so do the
grids and the search, on the values they will set.
"""

import difflib
import math
import os
import re
import sys
from functools import lru_cache
from pathlib import Path

import yaml
import recbole
from recbole.evaluator.register import metrics_dict
from recbole.utils import ModelType
from recbole.utils import argument_list

from recbole_sam.data.dataset import check_training_options
from recbole_sam.errors import ConfigError
from recbole_sam.optim import BASE_OPTIMIZERS
from recbole_sam.property_files import properties_dir

TRAINERS = ("sam", "plain")
SAM_VARIANTS = ("sam", "asam", "looksam", "helen", "saf")
S3REC_STAGES = ("pretrain", "finetune")
# Keys with a fixed set of allowed values (issue 9's paper-setting switches and friends).
CHOICES = {
    "padding_side": ("right", "left"),
    "sam_second_pass_draws": ("replay", "fresh_dropout", "fresh"),
    "neg_exclude": ("input", "user"),
    "rho_schedule": ("constant", "linear", "cosine"),
    "eval_mask_value": ("exclude", "zero"),
    "sam_params": ("all", "dense", "norm"),
}
BOOLEANS = (
    "position_from_prediction",
    "zero_padding",
    "mask_padding_positions",
    "pack_sequences",
    "eval_mask_history",
    "eval_report_both",
)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def require(ok, message):
    """Raise ``ConfigError(message)`` unless ``ok``."""
    if not ok:
        raise ConfigError(message)


def check_options(config, model_class=None):
    """Raise ``ConfigError`` naming the key and its allowed values for any bad recbole-sam option."""
    require(config.get("trainer") in TRAINERS, f"trainer: {config.get('trainer')!r} is not one of {', '.join(TRAINERS)}")
    require(_is_number(config.get("rho")) and config["rho"] > 0, f"rho: must be a number > 0, got {config.get('rho')!r}")
    require(
        config.get("sam_variant") in SAM_VARIANTS,
        f"sam_variant: {config.get('sam_variant')!r} is not one of {', '.join(SAM_VARIANTS)}",
    )
    interval = config.get("sam_interval")
    require(
        isinstance(interval, int) and not isinstance(interval, bool) and interval >= 1,
        f"sam_interval: must be an integer >= 1, got {interval!r}",
    )
    for key in ("looksam_alpha", "asam_eta", "helen_bound", "saf_weight"):
        require(_is_number(config.get(key)) and config[key] >= 0, f"{key}: must be a number >= 0, got {config.get(key)!r}")
    if config["trainer"] == "sam":
        learner = str(config.get("learner")).lower()
        require(
            learner in BASE_OPTIMIZERS,
            f"learner: {config.get('learner')!r} cannot be wrapped by SAM; allowed: {', '.join(BASE_OPTIMIZERS)}",
        )
        require(not config.get("enable_scaler"), "enable_scaler: must be False with trainer sam (allowed: False)")
    if "sam_stages" in config:
        stages = config["sam_stages"]
        if isinstance(stages, str):  # from the command line: finetune, [finetune] or "pretrain,finetune"
            stages = [stage for stage in re.split(r"[\s,\[\]'\"]+", stages) if stage]
        config["sam_stages"] = stages
        require(
            isinstance(stages, list) and set(stages) <= set(S3REC_STAGES),
            f"sam_stages: must be a list of {', '.join(S3REC_STAGES)}, got {stages!r}",
        )
    allowed_losses = getattr(model_class, "LOSS_TYPES", None)
    if allowed_losses and "loss_type" in config:
        require(
            config["loss_type"] in allowed_losses,
            f"loss_type: {config['loss_type']!r} is not one of {', '.join(allowed_losses)}",
        )
    for key, allowed in CHOICES.items():
        if key in config:
            require(config[key] in allowed, f"{key}: {config[key]!r} is not one of {', '.join(allowed)}")
    for key in BOOLEANS:
        if key in config:
            require(isinstance(config[key], bool), f"{key}: must be True or False, got {config[key]!r}")
    threads = config.get("threads")
    require(
        threads is None or (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1),
        f"threads: must be an integer >= 1 (or ~ for the default), got {threads!r}",
    )
    check_training_options(config)
    check_training_values(config)
    check_evaluation_values(config)
    check_architecture_values(config)
    _check_model_options(config, model_class)
    _check_dataset_files(config)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def check_training_values(config):
    """Raise ``ConfigError`` for RecBole training keys that RecBole would accept and then crash
    on, or silently misuse (``epochs: -1`` reports an untrained model)."""
    for key in ("epochs", "train_batch_size", "eval_batch_size", "stopping_step", "MAX_ITEM_LIST_LENGTH", "saf_lag"):
        if key in config:
            require(_is_int(config[key]) and config[key] >= 1, f"{key}: must be an integer >= 1, got {config[key]!r}")
    if "eval_step" in config:
        step = config["eval_step"]
        require(_is_int(step) and step >= 0, f"eval_step: must be an integer >= 0 (0: no validation), got {step!r}")
    rate = config.get("learning_rate")
    require(_is_number(rate) and rate > 0, f"learning_rate: must be a number > 0, got {rate!r}")


def check_evaluation_values(config):
    """Raise ``ConfigError`` for a seed, cut-off or metric that RecBole would crash on (with a
    traceback, after the log is written) or misread."""
    seed = config.get("seed")
    require(_is_int(seed) and 0 <= seed < 2**32, f"seed: must be an integer in [0, 2**32), got {seed!r}")
    topk = config.get("topk")
    cutoffs = topk if isinstance(topk, list) else [topk]
    require(
        bool(cutoffs) and all(_is_int(k) and k >= 1 for k in cutoffs),
        f"topk: must be an integer >= 1 or a list of them, e.g. [10, 20], got {topk!r}",
    )
    metrics = config.get("metrics")
    names = metrics if isinstance(metrics, list) else [metrics]
    unknown = [name for name in names if str(name).lower() not in metrics_dict]
    allowed = ", ".join(sorted(metric.__name__ for metric in metrics_dict.values()))
    require(bool(names), f"metrics: name at least one; allowed: {allowed}")
    require(not unknown, f"metrics: {unknown[0] if unknown else ''!r} is not a RecBole metric (any letter case); allowed: {allowed}")


def check_architecture_values(config):
    """Raise ``ConfigError`` for model sizes and dropout rates the model's constructor would
    refuse (``hidden_size`` not a multiple of ``n_heads``), crash on (``n_heads: 0``) or train
    nonsense with (a dropout rate of 1.5), before the log is written. Only keys the config has
    are checked: any RecBole model may use them."""
    for key in ("hidden_size", "inner_size", "n_heads", "n_layers", "embedding_size"):
        if config.get(key) is not None:
            require(_is_int(config[key]) and config[key] >= 1, f"{key}: must be an integer >= 1, got {config[key]!r}")
    uses_heads = "n_heads" in _model_default_keys(config.get("model"))  # a paper file sets n_heads for every model
    if uses_heads and config.get("hidden_size") is not None and config.get("n_heads") is not None:
        require(
            config["hidden_size"] % config["n_heads"] == 0,
            f"hidden_size: must be a multiple of n_heads ({config['n_heads']}), got {config['hidden_size']}",
        )
    for key, value in config.items():
        if "dropout" in str(key) and value is not None:
            rates = value if isinstance(value, list) else [value]
            require(
                all(_is_number(rate) and 0 <= rate < 1 for rate in rates),
                f"{key}: a dropout rate must be a number in [0, 1), got {value!r}",
            )


def computed_metrics(config):
    """list: the names RecBole's evaluator reports, ``metric@k`` for each metric and cut-off."""
    metrics = config["metrics"] if isinstance(config["metrics"], list) else [config["metrics"]]
    topk = config["topk"] if isinstance(config["topk"], list) else [config["topk"]]
    return [f"{metric}@{k}" for metric in metrics for k in topk]


def check_valid_metric(config):
    """Raise ``ConfigError`` unless RecBole's evaluator computes ``valid_metric``.

    ``run_recbole_sam`` calls it before training, not ``SAMConfig``: the experiment grids build
    configs with other metrics first and refuse them with their own, more precise message.
    """
    # RecBole finds out only after the first epoch, with a KeyError. Value metrics (AUC, MAE)
    # have no cut-off; eval_report_both adds masked_/unmasked_ copies of every metric.
    computed = computed_metrics(config)
    metrics = config["metrics"] if isinstance(config["metrics"], list) else [config["metrics"]]
    allowed = {name.lower() for name in computed + list(metrics)}
    chosen = re.sub(r"^(un)?masked_", "", str(config["valid_metric"]).lower())
    require(
        chosen in allowed,
        f"valid_metric: {config['valid_metric']!r} is not computed; computed: {', '.join(computed)} (metrics x topk)",
    )


def _check_model_options(config, model_class):
    # A model module of ours may define check_options(config) (CL4SRec and S3Rec do): its options'
    # one place; run now, before the data are loaded and the log is written.
    module = sys.modules.get(getattr(model_class, "__module__", ""))
    check = getattr(module, "check_options", None)
    if module is not None and module.__name__.startswith("recbole_sam.") and callable(check):
        check(config)


def atomic_columns(path):
    """The field names in an atomic file's header (``user_id:token`` -> ``user_id``)."""
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\r\n")
    return [field.split(":")[0] for field in header.split("\t") if field]


def _check_dataset_files(config):
    # Without its files RecBole would try to download the dataset, which hangs or fails here.
    path, name = config["data_path"], config["dataset"]
    if config.get("benchmark_filename"):
        expected = [os.path.join(path, f"{name}.{part}.inter") for part in config["benchmark_filename"]]
    else:
        expected = [os.path.join(path, f"{name}.inter")]
    missing = [file for file in expected if not os.path.isfile(file)]
    require(
        not missing,
        f"dataset: no atomic file {missing[0] if missing else ''} (data_path={path!r}); "
        "ml-100k ships with RecBole, other datasets need converting first (see dataset/)",
    )
    _check_needed_columns(config, expected[0])


def _check_needed_columns(config, inter_file):
    # RecBole loads only load_col's columns (by default user_id and item_id), and fails much
    # later ("[timestamp] is not exist in interaction") when the time-ordered split needs more.
    columns = atomic_columns(inter_file)
    load_col = config.get("load_col")
    if isinstance(load_col, dict) and "inter" in load_col:
        columns = [column for column in columns if column in load_col["inter"]]
    needed = [config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]]
    # Sequential models order each user's items by time, as does the split with order TO.
    if config.get("MODEL_TYPE") == ModelType.SEQUENTIAL or (config.get("eval_args") or {}).get("order") == "TO":
        needed.append(config["TIME_FIELD"])
    absent = [field for field in needed if field not in columns]
    name = config["dataset"]
    require(
        not absent,
        f"load_col: the run needs the field {absent[0] if absent else ''!r} of {inter_file}, which is not loaded "
        f"(loaded: {', '.join(columns) or 'none'}); a converted dataset's settings are in "
        f"{os.path.join(config['data_path'], name + '.yaml')}, which dataset/prepare.py writes, "
        "or set load_col and eval_args in a config file",
    )


@lru_cache(maxsize=None)
def _property_file_keys():
    recbole_properties = Path(recbole.__file__).resolve().parent / "properties"
    files = [f for f in recbole_properties.rglob("*.yaml") if "url" not in f.name] + list(properties_dir().rglob("*.yaml"))
    keys = {"model", "dataset"}  # set in config files (a search's best.yaml) and config_dict too
    for names in (argument_list.general_arguments, argument_list.training_arguments):
        keys.update(names)
    keys.update(argument_list.evaluation_arguments + argument_list.dataset_arguments)
    for file in files:
        keys.update(_top_level_keys(file))
    return frozenset(keys)


def _top_level_keys(file):
    content = yaml.safe_load(Path(file).read_text(encoding="utf-8"))
    return set(content) if isinstance(content, dict) else set()


@lru_cache(maxsize=None)
def _model_default_keys(model):
    """frozenset: the keys of the model's own property files, RecBole's and ours."""
    files = [Path(recbole.__file__).resolve().parent / "properties" / "model" / f"{model}.yaml"]
    files.append(properties_dir() / "model" / f"{model}.yaml")
    return frozenset().union(*(_top_level_keys(file) for file in files if file.is_file()))


def known_keys(extra_files=()):
    """set: every key a RecBole default, a property file of ours or a model's options names."""
    keys = set(_property_file_keys())
    for file in extra_files:
        keys.update(_top_level_keys(file))
    return keys


def check_known_keys(settings, extra_files=()):
    """Warn on stderr (``strict: True``: raise) for each key no property file knows.

    Args:
        settings (dict): the user's keys (config files and ``config_dict``).
        extra_files (list): further property files, e.g. the one beside the dataset.

    Raises:
        ConfigError: an unknown key while ``settings['strict']`` is true.
    """
    known = known_keys(extra_files)
    for key in settings:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.75)
        message = f"{key}: unknown key, " + (f"did you mean `{close[0]}`?" if close else "no RecBole or recbole-sam property has this name")
        if settings.get("strict"):
            raise ConfigError(message + " (strict: unknown keys are errors)")
        print(f"warning: {message} (--strict makes this an error)", file=sys.stderr)
