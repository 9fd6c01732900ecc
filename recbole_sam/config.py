"""recbole-sam's configuration: RecBole's ``Config`` plus our property files and derived defaults.

Order of precedence (later wins): RecBole's property files < ours (``properties/overall.yaml``,
``properties/model/<model>.yaml``, ``properties/dataset/<dataset>.yaml``) < the user's config
files < ``config_dict``. Unlike RecBole's ``Config``, ``SAMConfig`` never reads ``sys.argv``:
the command line reaches it only through ``run_recbole_sam.py``, which passes its overrides
as ``config_dict``, so test runners' and other programs' flags never leak in. The checks of the
values live in checks.py.
"""

import os
import sys

import yaml
from recbole.config import Config
from recbole.utils import InputType

from recbole_sam.checks import require, check_evaluation_values, check_known_keys, check_options
from recbole_sam.errors import ConfigError
from recbole_sam.literals import parse_literal
from recbole_sam.property_files import dataset_properties_file, properties_dir
from recbole_sam.registry import get_model


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
        require(data_path is None or os.path.isdir(str(data_path)), f"data_path: no folder {data_path!r}")
        self._derive_train_negative_sampling()
        check_evaluation_values(self.final_config_dict)  # RecBole's own topk check raises a ValueError
        super()._set_default_parameters()
        if self.final_config_dict.get("loss_type") == "BCE":
            self.final_config_dict["MODEL_INPUT_TYPE"] = InputType.PAIRWISE  # one sampled negative per target
        check_options(self.final_config_dict, self.model_class)
        # Any model's config has every key; only S3Rec has stages (a RecBole model with stages
        # has its own trainer, which get_trainer refuses).
        require(
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
