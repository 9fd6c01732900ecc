"""recbole-sam's configuration: RecBole's ``Config`` plus our property files, derived defaults and checks.

Order of precedence (later wins): RecBole's property files < ours (``properties/overall.yaml``,
``properties/model/<model>.yaml``, ``properties/dataset/<dataset>.yaml``) < the user's config
files < ``config_dict``. Unlike RecBole's ``Config``, ``SAMConfig`` never reads ``sys.argv``:
the command line reaches it only through ``run_recbole_sam.py``, which passes its overrides
as ``config_dict``, so test runners' and other programs' flags never leak in.
"""

import math
import os
import re
from pathlib import Path

import torch
import yaml
from recbole.config import Config
from recbole.utils import InputType

from recbole_sam.data.dataset import check_training_options
from recbole_sam.errors import ConfigError
from recbole_sam.optim import SAM, LookSAM
from recbole_sam.registry import get_model

TRAINERS = ("sam", "plain")
SAM_VARIANTS = ("sam", "asam", "looksam")
S3REC_STAGES = ("pretrain", "finetune")
# Keys with a fixed set of allowed values (issue 9's paper-setting switches and friends).
CHOICES = {
    "padding_side": ("right", "left"),
    "sam_second_pass_draws": ("replay", "fresh"),
    "neg_exclude": ("input", "user"),
    "rho_schedule": ("constant", "linear", "cosine"),
}
BOOLEANS = (
    "position_from_prediction",
    "zero_padding",
    "mask_padding_positions",
    "pack_sequences",
    "eval_mask_history",
    "eval_report_both",
)
# RecBole's ``learner`` names that SAM can wrap; sparse_adam is left out on purpose, its
# sparse gradients have no norm over all parameters to ascend along.
BASE_OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
}


def properties_dir():
    """The folder with our YAML defaults: ``properties/`` beside the package in a checkout,
    ``recbole_sam/properties`` when installed from a wheel."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "properties", package / "properties"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("recbole-sam's properties/ folder is missing from the installation")


class SAMConfig(Config):
    """RecBole's ``Config`` with recbole-sam's defaults and input checks (see the module doc)."""

    def _load_cmd_line(self):
        return {}

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
        for file in (root / "overall.yaml", root / "model" / f"{model}.yaml", root / "dataset" / f"{dataset}.yaml"):
            if file.is_file():
                self._update_internal_config_dict(str(file))

    def _set_default_parameters(self):
        self._derive_train_negative_sampling()
        super()._set_default_parameters()
        if self.final_config_dict.get("loss_type") == "BCE":
            self.final_config_dict["MODEL_INPUT_TYPE"] = InputType.PAIRWISE  # one sampled negative per target
        check_options(self.final_config_dict, self.model_class)

    def _derive_train_negative_sampling(self):
        # RecBole samples one negative per target by default, and then refuses CE, its
        # SASRec's default loss. Unless the user chose, sample exactly when the loss needs it.
        if "train_neg_sample_args" in self.external_config_dict:
            return
        if self.final_config_dict.get("loss_type") == "CE":
            self.final_config_dict["train_neg_sample_args"] = None
        elif self.final_config_dict.get("loss_type") in ("BPR", "BCE"):
            self.final_config_dict["train_neg_sample_args"] = {"distribution": "uniform", "sample_num": 1}


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
    for key in ("looksam_alpha", "asam_eta"):
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
    _check_dataset_files(config)


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


def build_sam_optimizer(params, config, learner, learning_rate, weight_decay):
    """The SAM optimizer that ``sam_variant`` names, around RecBole's ``learner``.

    Args:
        params: the parameters to optimise.
        config (Config): supplies rho, sam_variant, sam_interval, looksam_alpha and asam_eta.
        learner (str): RecBole's optimizer name (adam, adamw, sgd, adagrad, rmsprop).
        learning_rate (float): the base optimizer's learning rate.
        weight_decay (float): the base optimizer's weight decay.

    Returns:
        SAM: a ``SAM`` or ``LookSAM`` instance.
    """
    base = BASE_OPTIMIZERS.get(str(learner).lower())
    if base is None:
        raise ConfigError(f"learner: {learner!r} cannot be wrapped by SAM; allowed: {', '.join(BASE_OPTIMIZERS)}")
    common = dict(
        rho=config["rho"], eta=config["asam_eta"], interval=config["sam_interval"], lr=learning_rate, weight_decay=weight_decay
    )
    if config["sam_variant"] == "looksam":
        return LookSAM(params, base, alpha=config["looksam_alpha"], **common)
    return SAM(params, base, adaptive=config["sam_variant"] == "asam", **common)
