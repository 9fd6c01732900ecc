"""recbole-sam's configuration: RecBole's ``Config`` plus our property files, derived defaults and checks.

Order of precedence (later wins): RecBole's property files < ours (``properties/overall.yaml``,
``properties/model/<model>.yaml``, ``properties/dataset/<dataset>.yaml``) < the user's config
files < ``config_dict``. Unlike RecBole's ``Config``, ``SAMConfig`` never reads ``sys.argv``:
the command line reaches it only through ``run_recbole_sam.py``, which passes its overrides
as ``config_dict``, so test runners' and other programs' flags never leak in.
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
from recbole.config import Config
from recbole.evaluator.register import metrics_dict
from recbole.utils import InputType, ModelType
from recbole.utils import argument_list

from recbole_sam.data.dataset import check_training_options
from recbole_sam.errors import ConfigError
from recbole_sam.literals import parse_literal
from recbole_sam.optim import BASE_OPTIMIZERS
from recbole_sam.registry import get_model

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


def properties_dir():
    """The folder with our YAML defaults: ``properties/`` beside the package in a checkout,
    ``recbole_sam/properties`` when installed from a wheel."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "properties", package / "properties"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("recbole-sam's properties/ folder is missing from the installation")


def dataset_properties_file(data_path, dataset):
    """``<data_path>/<dataset>/<dataset>.yaml``: the property file ``dataset/prepare.py`` writes
    beside the atomic files, so that a converted dataset needs no hand-written YAML."""
    return Path(str(data_path)) / dataset / f"{dataset}.yaml"


class SAMConfig(Config):
    """RecBole's ``Config`` with recbole-sam's defaults and input checks (see the module doc).

    Unknown keys (``sam_intervall``) get one ``warning:`` line on stderr naming the closest
    known key; with ``strict: True`` (``--strict``) they are an error.
    """

    def _load_cmd_line(self):
        return {}

    def _convert_config_dict(self, config_dict):
        # RecBole eval()s these strings; read them as literals instead (see literals.py).
        return {key: parse_literal(key, value) if isinstance(value, str) else value for key, value in config_dict.items()}

    def _load_config_files(self, file_list):
        merged = {}
        for file in file_list or []:
            try:
                with open(file, "r", encoding="utf-8") as f:
                    content = yaml.load(f.read(), Loader=self.yaml_loader)
            except OSError as error:
                raise ConfigError(f"config_files: cannot read '{file}': {error.strerror}") from None
            except yaml.YAMLError as error:
                reason = str(error).replace("\n", " ")
                raise ConfigError(f"config_files: '{file}' is not valid YAML: {reason}") from None
            if content is None:
                continue
            if not isinstance(content, dict):
                raise ConfigError(f"config_files: '{file}' must hold 'key: value' lines, found a {type(content).__name__}")
            merged.update(content)
        return merged

    def _get_model_and_dataset(self, model, dataset):
        model = model if model is not None else self.external_config_dict.get("model")
        dataset = dataset if dataset is not None else self.external_config_dict.get("dataset")
        if model is None:
            raise ConfigError("model: not given (pass --model, or 'model:' in a config file)")
        if dataset is None:
            raise ConfigError("dataset: not given (pass --dataset, or 'dataset:' in a config file)")
        return super()._get_model_and_dataset(get_model(model) if isinstance(model, str) else model, dataset)

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        root = properties_dir()
        data_path = self.external_config_dict.get("data_path", self.internal_config_dict.get("data_path"))
        beside_data = dataset_properties_file(data_path, dataset)
        self.dataset_property_files = [file for file in (root / "dataset" / f"{dataset}.yaml", beside_data) if file.is_file()]
        for file in [root / "overall.yaml", root / "model" / f"{model}.yaml", *self.dataset_property_files]:
            if file.is_file():
                self._update_internal_config_dict(str(file))
        check_known_keys(self.external_config_dict, self.dataset_property_files)

    def _init_device(self):
        """RecBole's device choice, with two of its traps removed: RecBole sets
        CUDA_VISIBLE_DEVICES to ``gpu_id`` ('0' by default), which undoes a choice made before it
        (a scheduler's or Ray's GPU for this process, or '' to hide the GPUs), and it ignores
        ``use_gpu``. Here a CUDA_VISIBLE_DEVICES already set is kept unless ``gpu_id`` is given,
        and ``use_gpu: False`` means the CPU."""
        config, environment = self.final_config_dict, os.environ.get("CUDA_VISIBLE_DEVICES")
        use_gpu, gpu_id_given = bool(config["use_gpu"]), "gpu_id" in self.external_config_dict
        if not use_gpu:
            config["gpu_id"] = ""
        elif environment is not None and not gpu_id_given:
            config["gpu_id"] = environment
        super()._init_device()
        # The variable chose this run's device; it stays as it was for the rest of the process
        # and for the processes it starts (Ray's workers see every GPU again), unless gpu_id
        # was given, which RecBole's users expect to pin the process.
        if not (use_gpu and gpu_id_given):
            if environment is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = environment
        # RecBole's default use_gpu: True stays in the log even on a machine without a GPU.
        config["use_gpu"] = use_gpu and self["device"].type == "cuda"
        if use_gpu and gpu_id_given and not config["use_gpu"]:  # RecBole falls back to the CPU without a word
            _note_once(f"note: gpu_id: no GPU {config['gpu_id']!r} is visible here; training on the CPU")

    def _set_default_parameters(self):
        data_path = self.external_config_dict.get("data_path")
        _require(data_path is None or os.path.isdir(str(data_path)), f"data_path: no folder {data_path!r}")
        self._derive_train_negative_sampling()
        check_evaluation_values(self.final_config_dict)  # RecBole's own topk check raises a ValueError
        super()._set_default_parameters()
        if self.final_config_dict.get("loss_type") == "BCE":
            self.final_config_dict["MODEL_INPUT_TYPE"] = InputType.PAIRWISE  # one sampled negative per target
        check_options(self.final_config_dict, self.model_class)
        # Any model's config has every key; only S3Rec has stages (a RecBole model with stages
        # has its own trainer, which get_trainer refuses).
        _require(
            "train_stage" not in self.external_config_dict or self.model == "S3Rec",
            f"train_stage: only S3Rec has stages (pretrain, finetune); {self.model} trains in one, drop train_stage",
        )

    def _derive_train_negative_sampling(self):
        # RecBole samples one negative per target by default, and then refuses CE, its
        # SASRec's default loss. Unless the user chose, sample exactly when the loss needs it.
        if "train_neg_sample_args" in self.external_config_dict:
            return
        if self.final_config_dict.get("loss_type") == "CE":
            self.final_config_dict["train_neg_sample_args"] = None
        elif self.final_config_dict.get("loss_type") in ("BPR", "BCE"):
            self.final_config_dict["train_neg_sample_args"] = {"distribution": "uniform", "sample_num": 1}


_NOTED = set()


def _note_once(line):
    # One run builds several configs (S3Rec's stages, a search's checks): say it once.
    if line not in _NOTED:
        _NOTED.add(line)
        print(line, file=sys.stderr)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _require(ok, message):
    if not ok:
        raise ConfigError(message)


def check_options(config, model_class=None):
    """Raise ``ConfigError`` naming the key and its allowed values for any bad recbole-sam option."""
    _require(config.get("trainer") in TRAINERS, f"trainer: {config.get('trainer')!r} is not one of {', '.join(TRAINERS)}")
    _require(_is_number(config.get("rho")) and config["rho"] > 0, f"rho: must be a number > 0, got {config.get('rho')!r}")
    _require(
        config.get("sam_variant") in SAM_VARIANTS,
        f"sam_variant: {config.get('sam_variant')!r} is not one of {', '.join(SAM_VARIANTS)}",
    )
    interval = config.get("sam_interval")
    _require(
        isinstance(interval, int) and not isinstance(interval, bool) and interval >= 1,
        f"sam_interval: must be an integer >= 1, got {interval!r}",
    )
    for key in ("looksam_alpha", "asam_eta", "helen_bound", "saf_weight"):
        _require(_is_number(config.get(key)) and config[key] >= 0, f"{key}: must be a number >= 0, got {config.get(key)!r}")
    if config["trainer"] == "sam":
        learner = str(config.get("learner")).lower()
        _require(
            learner in BASE_OPTIMIZERS,
            f"learner: {config.get('learner')!r} cannot be wrapped by SAM; allowed: {', '.join(BASE_OPTIMIZERS)}",
        )
        _require(not config.get("enable_scaler"), "enable_scaler: must be False with trainer sam (allowed: False)")
    if "sam_stages" in config:
        stages = config["sam_stages"]
        if isinstance(stages, str):  # from the command line: finetune, [finetune] or "pretrain,finetune"
            stages = [stage for stage in re.split(r"[\s,\[\]'\"]+", stages) if stage]
        config["sam_stages"] = stages
        _require(
            isinstance(stages, list) and set(stages) <= set(S3REC_STAGES),
            f"sam_stages: must be a list of {', '.join(S3REC_STAGES)}, got {stages!r}",
        )
    allowed_losses = getattr(model_class, "LOSS_TYPES", None)
    if allowed_losses and "loss_type" in config:
        _require(
            config["loss_type"] in allowed_losses,
            f"loss_type: {config['loss_type']!r} is not one of {', '.join(allowed_losses)}",
        )
    for key, allowed in CHOICES.items():
        if key in config:
            _require(config[key] in allowed, f"{key}: {config[key]!r} is not one of {', '.join(allowed)}")
    for key in BOOLEANS:
        if key in config:
            _require(isinstance(config[key], bool), f"{key}: must be True or False, got {config[key]!r}")
    threads = config.get("threads")
    _require(
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
            _require(_is_int(config[key]) and config[key] >= 1, f"{key}: must be an integer >= 1, got {config[key]!r}")
    if "eval_step" in config:
        step = config["eval_step"]
        _require(_is_int(step) and step >= 0, f"eval_step: must be an integer >= 0 (0: no validation), got {step!r}")
    rate = config.get("learning_rate")
    _require(_is_number(rate) and rate > 0, f"learning_rate: must be a number > 0, got {rate!r}")


def check_evaluation_values(config):
    """Raise ``ConfigError`` for a seed, cut-off or metric that RecBole would crash on (with a
    traceback, after the log is written) or misread."""
    seed = config.get("seed")
    _require(_is_int(seed) and 0 <= seed < 2**32, f"seed: must be an integer in [0, 2**32), got {seed!r}")
    topk = config.get("topk")
    cutoffs = topk if isinstance(topk, list) else [topk]
    _require(
        bool(cutoffs) and all(_is_int(k) and k >= 1 for k in cutoffs),
        f"topk: must be an integer >= 1 or a list of them, e.g. [10, 20], got {topk!r}",
    )
    metrics = config.get("metrics")
    names = metrics if isinstance(metrics, list) else [metrics]
    unknown = [name for name in names if str(name).lower() not in metrics_dict]
    allowed = ", ".join(sorted(metric.__name__ for metric in metrics_dict.values()))
    _require(bool(names), f"metrics: name at least one; allowed: {allowed}")
    _require(not unknown, f"metrics: {unknown[0] if unknown else ''!r} is not a RecBole metric (any letter case); allowed: {allowed}")


def check_architecture_values(config):
    """Raise ``ConfigError`` for model sizes and dropout rates the model's constructor would
    refuse (``hidden_size`` not a multiple of ``n_heads``), crash on (``n_heads: 0``) or train
    nonsense with (a dropout rate of 1.5), before the log is written. Only keys the config has
    are checked: any RecBole model may use them."""
    for key in ("hidden_size", "inner_size", "n_heads", "n_layers", "embedding_size"):
        if config.get(key) is not None:
            _require(_is_int(config[key]) and config[key] >= 1, f"{key}: must be an integer >= 1, got {config[key]!r}")
    if config.get("hidden_size") is not None and config.get("n_heads") is not None:
        _require(
            config["hidden_size"] % config["n_heads"] == 0,
            f"hidden_size: must be a multiple of n_heads ({config['n_heads']}), got {config['hidden_size']}",
        )
    for key, value in config.items():
        if "dropout" in str(key) and value is not None:
            rates = value if isinstance(value, list) else [value]
            _require(
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
    _require(
        chosen in allowed,
        f"valid_metric: {config['valid_metric']!r} is not computed; computed: {', '.join(computed)} (metrics x topk)",
    )


def _check_model_options(config, model_class):
    # A model module of ours may define check_options(config) (CL4SRec does): run it now, before the
    # data are loaded and the log is written, not in the model's constructor only.
    module = sys.modules.get(getattr(model_class, "__module__", ""))
    check = getattr(module, "check_options", None)
    if module is not None and module.__name__.startswith("recbole_sam.") and callable(check):
        check(config)
    if config.get("model") == "S3Rec":
        _check_s3rec(config)


def _check_s3rec(config):
    stage = config.get("train_stage")
    _require(stage in S3REC_STAGES, f"train_stage: {stage!r} is not one of {', '.join(S3REC_STAGES)}")
    # pre_model_path is checked by run_recbole_sam, before the log is written: a config for
    # fine-tuning may be built before its pre-trained model exists.
    attribute, item_file = config.get("item_attribute"), os.path.join(config["data_path"], f"{config['dataset']}.item")
    columns = _atomic_columns(item_file) if os.path.isfile(item_file) else []
    load_col = config.get("load_col")
    if isinstance(load_col, dict) and "item" in load_col:
        columns = [column for column in columns if column in load_col["item"]]
    _require(
        attribute in columns,
        f"item_attribute: dataset {config['dataset']!r} has no item field {attribute!r} loaded from {item_file} "
        f"(loaded: {', '.join(columns) or 'none'}); S3Rec pre-trains on an item attribute: load one with load_col "
        "and name it in item_attribute",
    )


def _atomic_columns(path):
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
    _require(
        not missing,
        f"dataset: no atomic file {missing[0] if missing else ''} (data_path={path!r}); "
        "ml-100k ships with RecBole, other datasets need converting first (see dataset/)",
    )
    _check_needed_columns(config, expected[0])


def _check_needed_columns(config, inter_file):
    # RecBole loads only load_col's columns (by default user_id and item_id), and fails much
    # later ("[timestamp] is not exist in interaction") when the time-ordered split needs more.
    columns = _atomic_columns(inter_file)
    load_col = config.get("load_col")
    if isinstance(load_col, dict) and "inter" in load_col:
        columns = [column for column in columns if column in load_col["inter"]]
    needed = [config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]]
    # Sequential models order each user's items by time, as does the split with order TO.
    if config.get("MODEL_TYPE") == ModelType.SEQUENTIAL or (config.get("eval_args") or {}).get("order") == "TO":
        needed.append(config["TIME_FIELD"])
    absent = [field for field in needed if field not in columns]
    name = config["dataset"]
    _require(
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

