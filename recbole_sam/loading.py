"""Load a saved RecBole checkpoint together with the dataset it was trained on.

RecBole's ``load_data_and_model`` reuses the pickled ``Config`` as is (with the paths and
device of the machine that trained it) and fails on torch >= 2.6 and on shape mismatches with
a long traceback. Here the configuration is rebuilt, and a checkpoint that does not fit the
model or dataset is refused with one ``ConfigError`` naming what differs.
"""

import os
import pickle
from dataclasses import dataclass

import torch
import yaml
from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_sam.config import SAMConfig
from recbole_sam.property_files import properties_dir
from recbole_sam.data.dataset import create_dataset  # run_recbole_sam's: train_scheme picks the training samples
from recbole_sam.errors import ConfigError
from recbole_sam.registry import get_model


@dataclass
class LoadedCheckpoint:
    """A trained model, ready to evaluate, with its configuration and data."""

    path: str
    config: SAMConfig
    model: torch.nn.Module
    dataset: object
    train_data: object
    valid_data: object
    test_data: object


def read_checkpoint(path):
    """The checkpoint dictionary RecBole's trainer saved at ``path``, tensors on the CPU.

    Raises:
        ConfigError: no such file, or not a RecBole checkpoint.
    """
    if not os.path.isfile(path):
        raise ConfigError(f"checkpoint: no file {path!r}")
    try:
        # RecBole pickles its Config into every checkpoint (see compat.trusted_torch_load), so
        # this loads a full pickle: only open checkpoints you or this package wrote.
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, EOFError, RuntimeError, pickle.UnpicklingError, ModuleNotFoundError, AttributeError) as error:
        raise ConfigError(f"checkpoint: cannot read {path!r} ({type(error).__name__}: {error})") from None
    missing = [key for key in ("config", "state_dict") if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        raise ConfigError(f"checkpoint: {path!r} is not a RecBole checkpoint (no {' or '.join(missing)})")
    return checkpoint


def _package_default_keys(model, dataset):
    # Keys of recbole-sam's own property files: their defaults may change between versions
    # (RecBole's are pinned at 1.2.1), so a checkpoint keeps the values it was trained with.
    root = properties_dir()
    keys = set()
    for file in (root / "overall.yaml", root / "model" / f"{model}.yaml", root / "dataset" / f"{dataset}.yaml"):
        if file.is_file():
            keys.update(yaml.safe_load(file.read_text(encoding="utf-8")) or {})
    return keys


def build_config(stored, model=None, dataset=None, config_file_list=None, config_dict=None):
    """The configuration to evaluate a checkpoint under.

    Without ``model``, ``dataset`` and ``config_file_list``: the settings the checkpoint was
    trained with (the user's settings and recbole-sam's defaults as stored in it; RecBole's
    defaults, paths and device are derived again, for this machine) with ``config_dict`` on
    top. With any of them: built afresh from the arguments, as ``run_recbole_sam`` would.

    Args:
        stored (Config): the config pickled in the checkpoint.
        model (str, optional): model name.
        dataset (str, optional): dataset name.
        config_file_list (list of str, optional): YAML files, later ones win.
        config_dict (dict, optional): overrides, e.g. ``{"data_path": "...", "use_gpu": False}``.

    Returns:
        SAMConfig: the configuration.

    Raises:
        ConfigError: bad settings, or a model or dataset other than the checkpoint's.
    """
    if model is None and dataset is None and config_file_list is None:
        trained = stored.final_config_dict
        ours = _package_default_keys(stored["model"], stored["dataset"])
        settings = {key: trained[key] for key in ours if key in trained}
        settings.update(stored.external_config_dict)
        settings.update(config_dict or {})
        config = SAMConfig(model=stored["model"], dataset=stored["dataset"], config_dict=settings)
    else:
        config = SAMConfig(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    for key in ("model", "dataset"):
        if config[key] != stored[key]:
            raise ConfigError(
                f"{key}: the checkpoint holds {stored['model']} trained on {stored['dataset']}, "
                f"not {key} {config[key]!r}"
            )
    return config


def _listed(items, limit=3):
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def check_state_dict(state_dict, model, describe):
    """Raise one ``ConfigError`` if ``state_dict`` cannot be loaded into ``model``.

    Args:
        state_dict (dict): the checkpoint's parameters.
        model (torch.nn.Module): the freshly built model.
        describe (str): what the model was built for, e.g. ``"SASRec on ml-100k (1683 item ids)"``.
    """
    expected = model.state_dict()
    problems = []
    shapes = [
        f"{name} is {tuple(state_dict[name].shape)} in the checkpoint but {tuple(tensor.shape)} here"
        for name, tensor in expected.items()
        if name in state_dict and state_dict[name].shape != tensor.shape
    ]
    missing = [name for name in expected if name not in state_dict]
    unexpected = [name for name in state_dict if name not in expected]
    if shapes:
        problems.append("shapes differ: " + _listed(shapes))
    if missing:
        problems.append("missing from the checkpoint: " + _listed(missing))
    if unexpected:
        problems.append("not in the model: " + _listed(unexpected))
    if problems:
        raise ConfigError(f"checkpoint: does not fit {describe}: " + "; ".join(problems))


def load_checkpoint(path, model=None, dataset=None, config_file_list=None, config_dict=None):
    """Rebuild the dataset, dataloaders and model a checkpoint was trained with, and load it.

    Args:
        path (str): a ``.pth`` file written by recbole-sam's (or RecBole's) trainer.
        model, dataset, config_file_list, config_dict: see :func:`build_config`.

    Returns:
        LoadedCheckpoint: config, model (on ``config['device']``), dataset and dataloaders.

    Raises:
        ConfigError: unreadable file, or a checkpoint that does not fit the model or dataset.
    """
    checkpoint = read_checkpoint(path)
    try:
        config = build_config(checkpoint["config"], model, dataset, config_file_list, config_dict)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    init_seed(config["seed"], config["reproducibility"])
    data = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, data)
    init_seed(config["seed"], config["reproducibility"])
    net = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    describe = f"{config['model']} on {config['dataset']} ({data.item_num} item ids, {data.user_num} user ids)"
    try:
        check_state_dict(checkpoint["state_dict"], net, describe)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    net.load_state_dict(checkpoint["state_dict"])
    net.load_other_parameter(checkpoint.get("other_parameter"))
    return LoadedCheckpoint(path, config, net, data, train_data, valid_data, test_data)
