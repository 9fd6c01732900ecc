"""The configuration every trial starts from, built and checked once, before the search.

Trials run in Ray's worker processes, with the trial's folder as working directory (and on a
cluster, on another machine): every path they read is made absolute here. Each value a trial
can draw is checked with recbole-sam's own config checks, so that a bad range fails before
the first trial rather than in the middle of the search.
"""

import math
import os

from recbole_sam.errors import ConfigError

# Keys that hold a path a trial reads.
PATH_KEYS = ("data_path", "pre_model_path")


def absolute_config(config_dict, config_file_list):
    """The overrides and YAML files with their paths made absolute.

    Returns:
        tuple: ``(config_dict, config_file_list)``, new objects.
    """
    config_dict = dict(config_dict or {})
    for key in PATH_KEYS:
        if isinstance(config_dict.get(key), str):
            config_dict[key] = os.path.abspath(config_dict[key])
    return config_dict, [os.path.abspath(path) for path in config_file_list or []]


def build_config(model, dataset, config_file_list, config_dict):
    """A ``SAMConfig``; its own checks raise ``ConfigError`` on bad input."""
    from recbole_sam.config import SAMConfig
    from recbole_sam.registry import get_trainer

    config = SAMConfig(model, dataset, config_file_list, config_dict=dict(config_dict))
    get_trainer(config)
    return config


def check_params(params, model, dataset, config_file_list, config_dict):
    """Every hyperparameter names a known key, and every value it can draw passes recbole-sam's checks.

    Args:
        params (list of Param): the search space.
        model, dataset, config_file_list, config_dict: the trials' base settings.

    Returns:
        SAMConfig: the base configuration (no searched value set).

    Raises:
        ConfigError: an unknown key, or a value a trial would be refused with, naming the line.
    """
    base = build_config(model, dataset, config_file_list, config_dict)
    known = base.final_config_dict
    for param in params:
        if param.name not in known:
            raise ConfigError(f"{param.where}: {param.name!r} is not a key that {model}, its trainer or RecBole knows")
        for value in param.sample_points():
            if param.is_integer:
                value = int(value)
            try:
                build_config(model, dataset, config_file_list, dict(config_dict, **{param.name: value}))
            except ConfigError as error:
                raise ConfigError(f"{param.where}: {param.name} = {value!r} would be refused: {error}") from None
    return base


def objective(base):
    """tuple: ``(valid_metric as reported, 'max' or 'min', validations of a full trial)``."""
    metric = str(base["valid_metric"]).lower()
    mode = "max" if base["valid_metric_bigger"] else "min"
    validations = math.ceil(base["epochs"] / max(int(base["eval_step"] or 1), 1))
    return metric, mode, max(validations, 1)


def data_path(base):
    """str: the absolute data_path the base configuration resolved (RecBole's or the user's)."""
    return os.path.abspath(base["data_path"])
