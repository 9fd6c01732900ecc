"""What a search is, checked before anything runs: model, dataset, space, options, folders.

``SearchSpec`` holds everything a search needs to start or to resume; it is written to
``<storage_path>/<name>/search.json`` before the first trial, and ``--resume`` reads it back.
Every check here runs before a file is written or Ray is started.
"""

import json
import math
import os
from dataclasses import asdict, dataclass, field

from recbole_sam.errors import ConfigError
from recbole_sam.tune import params as params_module
from recbole_sam.tune import space

SPEC_FILE = "search.json"
DEFAULT_SAMPLES = {"grid": 1}  # grid: every combination once; the samplers: 10 trials
DEFAULT_SAMPLES_OTHER = 10


@dataclass
class SearchSpec:
    """A search, as stored in ``search.json``.

    Args:
        model (str): model name.
        dataset (str): dataset name.
        params (list): ``[name, kind, values]`` of each hyperparameter (see ``params.Param``).
        config_dict (dict): overrides of every trial, paths made absolute.
        config_file_list (list of str): absolute YAML paths of every trial.
        search (str): ``random``, ``grid``, ``optuna`` or ``hyperopt``.
        scheduler (str): ``none``, ``asha`` or ``median``.
        num_samples (int): trials (grid: repetitions of the grid).
        seed (int): seed of the search algorithm.
        cpus_per_trial (int): CPUs Ray reserves for a trial, and its torch threads.
        gpus_per_trial (float or None): GPUs a trial reserves; None: 1 where the cluster has one, else 0.
        storage_path (str): absolute folder of searches.
        name (str): this search's folder under ``storage_path``.
        max_concurrent (int or None): at most this many trials at once.
        command (str): the command line that started it.
    """

    model: str
    dataset: str
    params: list
    config_dict: dict = field(default_factory=dict)
    config_file_list: list = field(default_factory=list)
    search: str = "random"
    scheduler: str = "asha"
    num_samples: int = 0
    seed: int = 2020
    cpus_per_trial: int = 1
    gpus_per_trial: float = None
    storage_path: str = ""
    name: str = ""
    max_concurrent: int = None
    command: str = ""

    @property
    def folder(self):
        """str: ``<storage_path>/<name>``, where Ray and recbole-sam write the search."""
        return os.path.join(self.storage_path, self.name)

    def param_objects(self):
        """list of Param: the hyperparameters."""
        return [params_module.Param(name, kind, tuple(values), where) for name, kind, values, where in self.params]

    def save(self):
        """Write ``search.json`` in the search's folder (atomically)."""
        from recbole_sam.atomic import write_json

        write_json(os.path.join(self.folder, SPEC_FILE), asdict(self))


def load_spec(storage_path, name):
    """The ``SearchSpec`` stored in ``<storage_path>/<name>``.

    Raises:
        ConfigError: no search there (for ``--resume``).
    """
    path = os.path.join(os.path.abspath(storage_path), name or "", SPEC_FILE)
    if not name or not os.path.isfile(path):
        where = os.path.join(os.path.abspath(storage_path), name or "<name>")
        raise ConfigError(f"resume: no search in {where} (pass the --storage_path and --name it was started with)")
    with open(path, encoding="utf-8") as file:
        return SearchSpec(**json.load(file))


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def check_options(spec):
    """Refuse bad options, each with one line naming it.

    Raises:
        ConfigError: an unknown search or scheduler, num_samples < 1, cpus_per_trial < 1,
            gpus_per_trial < 0, max_concurrent < 1, a search folder that already exists.
    """
    space.check_search(spec.search, spec.param_objects())
    space.check_scheduler(spec.scheduler)
    if not _is_int(spec.num_samples) or spec.num_samples < 1:
        raise ConfigError(f"num_samples: must be an integer >= 1, got {spec.num_samples!r}")
    if not _is_int(spec.cpus_per_trial) or spec.cpus_per_trial < 1:
        raise ConfigError(f"cpus_per_trial: must be an integer >= 1, got {spec.cpus_per_trial!r}")
    gpus = spec.gpus_per_trial
    if gpus is not None and (not isinstance(gpus, (int, float)) or not math.isfinite(gpus) or gpus < 0):
        raise ConfigError(f"gpus_per_trial: must be a number >= 0 (fractions allowed), got {gpus!r}")
    if spec.max_concurrent is not None and (not _is_int(spec.max_concurrent) or spec.max_concurrent < 1):
        raise ConfigError(f"max_concurrent: must be an integer >= 1, got {spec.max_concurrent!r}")


def check_new_folder(spec):
    """Raises ConfigError when ``<storage_path>/<name>`` exists: a new search never mixes into an old one."""
    if os.path.exists(spec.folder):
        raise ConfigError(f"name: {spec.folder} already exists; pass --resume to continue that search, or another --name")


def check_resources(spec, cpus, gpus):
    """Refuse a trial that the cluster can never place (Tune would leave it PENDING forever).

    Returns:
        float: the GPUs per trial to request (0 on a cluster without GPUs unless asked).

    Raises:
        ConfigError: more CPUs or GPUs per trial than the cluster has.
    """
    if spec.cpus_per_trial > cpus:
        too_many = f"{spec.cpus_per_trial} is more than the {cpus:g} CPUs Ray has"
        raise ConfigError(f"cpus_per_trial: {too_many} (allowed: 1..{cpus:g})")
    if spec.gpus_per_trial is None:
        return 1.0 if gpus >= 1 else 0.0
    if spec.gpus_per_trial > gpus:
        allowed = "0 (this cluster has no GPU)" if not gpus else f"0..{gpus:g}"
        too_many = f"{spec.gpus_per_trial:g} is more than the {gpus:g} GPUs Ray has"
        raise ConfigError(f"gpus_per_trial: {too_many} (allowed: {allowed})")
    return float(spec.gpus_per_trial)
