"""A grid of training runs, one JSON record per finished run, resumable.

A run is a model, a trainer, a dataset, a seed and the experiment's own settings (``rho``,
``train_fraction``). Each finished run's record (``recbole_sam.run``'s schema, its settings
being the run's and its config the grid's common options) is written to
``<out>/runs/<run_id>.json`` in one rename, so a crash or Ctrl-C leaves either the whole
record or none; running the same grid again skips the runs whose record exists.
"""

import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from recbole_sam import run as one_run
from recbole_sam.atomic import write_json
from recbole_sam.errors import ConfigError
from recbole_sam.literals import parse_literal

# The paper's grids (SAMRec, RecSys'23): Table 1/2, Figure 3 (rho), Figure 2 (sparsity).
TABLE_MODELS = ("SASRec", "CL4SRec", "S3Rec")
TABLE_TRAINERS = ("plain", "sam")
RHOS = (0.001, 0.01, 0.1, 1.0, 10.0)
FRACTIONS = (0.6, 0.8, 1.0)
SPARSITY_ARMS = (("SASRec", "plain"), ("SASRec", "sam"), ("CL4SRec", "plain"))

# Settings that change how a run looks on screen, not its numbers: a resumed grid may change them.
DISPLAY_ONLY = ("show_progress", "state", "threads")


@dataclass(frozen=True)
class Run:
    """One training run of a grid.

    Args:
        dataset (str): dataset name.
        model (str): model name.
        trainer (str): ``plain`` or ``sam``.
        seed (int): RecBole's ``seed``.
        overrides (tuple): sorted ``(key, value)`` pairs of the experiment's own settings.
    """

    dataset: str
    model: str
    trainer: str
    seed: int
    overrides: tuple = ()

    @property
    def settings(self):
        """dict: everything that tells this run from the others of its grid."""
        own = dict(self.overrides)
        return dict(dataset=self.dataset, model=self.model, trainer=self.trainer, **own, seed=self.seed)

    @property
    def run_id(self):
        """str: a file-name-safe slug, e.g. ``ml-100k_SASRec_sam_rho=0.1_seed=2020``."""
        parts = [self.dataset, self.model, self.trainer, *(f"{key}={value}" for key, value in self.overrides)]
        parts.append(f"seed={self.seed}")
        return re.sub(r"[^A-Za-z0-9._=+-]", "-", "_".join(parts))


def expand_grid(arms, datasets, seeds):
    """Every arm on every dataset with every seed, seeds outermost so that an interrupted grid
    already holds whole seeds.

    Args:
        arms (list): ``(model, trainer, overrides)`` triples, ``overrides`` a dict.
        datasets (list of str): dataset names.
        seeds (list of int): seeds.

    Returns:
        list of Run: without duplicates, in that order.

    Raises:
        ConfigError: two different runs that would share a file name.
    """
    runs = {}
    for seed in seeds:
        for dataset in datasets:
            for model, trainer, overrides in arms:
                run = Run(dataset, model, trainer, int(seed), tuple(sorted(overrides.items())))
                if runs.setdefault(run.run_id, run) != run:
                    other = runs[run.run_id].settings
                    raise ConfigError(f"grid: {run.settings} and {other} share the file name {run.run_id}")
    return list(runs.values())


def table_arms(models=TABLE_MODELS, trainers=TABLE_TRAINERS):
    """Tables 1 and 2: each model with each trainer."""
    return [(model, trainer, {}) for model in models for trainer in trainers]


def rho_arms(rhos=RHOS):
    """Figure 3: SAMRec at each rho, and SASRec (plain) as its baseline."""
    return [("SASRec", "plain", {})] + [("SASRec", "sam", {"rho": float(rho)}) for rho in rhos]


def sparsity_arms(fractions=FRACTIONS):
    """Figure 2: SASRec, SAMRec and CL4SRec on a fraction of the training samples."""
    return [(model, trainer, {"train_fraction": float(f)}) for f in fractions for model, trainer in SPARSITY_ARMS]


def run_config(run, common, checkpoint_dir):
    """The ``config_dict`` of one run: the grid's common options, then the run's own settings."""
    settings = run.settings
    del settings["model"], settings["dataset"]
    return dict(common, **settings, checkpoint_dir=str(checkpoint_dir))


def validate_grid(runs, common=None, config_files=None):
    """Build the config of each distinct run (seeds aside) before training anything, so that
    bad input fails once, up front, rather than after hours of earlier runs.

    Returns:
        list of SAMConfig: one per distinct run.

    Raises:
        ConfigError: the first bad model, trainer, dataset, rho, fraction or option.
    """
    from recbole_sam.config import SAMConfig
    from recbole_sam.registry import get_trainer

    configs = {}
    for run in runs:
        key = (run.dataset, run.model, run.trainer, run.overrides)
        if key not in configs:
            # run_config builds a new dict: SAMConfig converts the values of its dict in place.
            config_dict = run_config(run, common or {}, "saved")
            configs[key] = SAMConfig(run.model, run.dataset, config_files, config_dict=config_dict)
            get_trainer(configs[key])
    return list(configs.values())


def train_and_test(model, dataset, config_file_list, config_dict):
    """The default way to execute a run: ``run_recbole_sam`` with the best model saved and tested.

    A run that an interrupted grid left unfinished (its ``-last.pth`` in the run's own
    ``checkpoint_dir``) goes on from its last epoch instead of starting again; the result then
    has ``resumed_at_epoch`` and ``seconds_before`` (training time of the earlier parts). One
    that cannot be read starts again. S3Rec resumes only a run that fine-tunes a given
    ``pre_model_path``; one that pre-trains first restarts (pre-training has no last-epoch checkpoint).
    """
    from recbole_sam.checkpoint import unfinished_runs
    from recbole_sam.loading import read_checkpoint
    from recbole_sam.quick_start import run_recbole_sam

    unfinished = unfinished_runs(config_dict["checkpoint_dir"], model, dataset)
    if unfinished:
        resume_from = max(unfinished, key=os.path.getmtime)
        try:
            checkpoint = read_checkpoint(resume_from)
        except ConfigError as error:  # e.g. written by an older version of this package
            logging.getLogger(__name__).warning(f"{error}; the run starts again")
            os.remove(resume_from)
        else:
            if model != "S3Rec" or _fine_tunes_given_model(checkpoint, config_dict):
                result = run_recbole_sam(config_dict=config_dict, saved=True, resume_from=resume_from)
                return dict(result, resumed_at_epoch=checkpoint["epoch"] + 1, seconds_before=checkpoint.get("seconds", 0.0))
    return run_recbole_sam(model, dataset, config_file_list=config_file_list, config_dict=config_dict, saved=True)


def _fingerprint(run, common, config_files):
    """What a run is, as its checkpoint folder records it: the settings, the grid's options (those
    that change its numbers, as for records) and the contents of its config files."""
    options = {key: value for key, value in common.items() if key not in DISPLAY_ONLY}
    files = [[str(file), one_run.file_digest(file)] for file in config_files or []]
    return json.loads(json.dumps({"settings": run.settings, "common": options, "config_files": files}))


def _prepare_checkpoint_dir(checkpoint_dir, fingerprint):
    """Keep an unfinished run's folder (its last-epoch checkpoint resumes it) only if the run
    was started with the same settings; otherwise it starts again in an empty folder."""
    stamp = checkpoint_dir / "run.json"
    if checkpoint_dir.exists():
        try:
            same = json.loads(stamp.read_text(encoding="utf-8")) == fingerprint
        except (OSError, ValueError):
            same = False
        if same:
            return
        logging.getLogger(__name__).warning(f"{checkpoint_dir}: left by a run with other settings; removed")
        shutil.rmtree(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True)
    write_json(stamp, fingerprint, indent=None)


def _as_value(key, value):
    # Records before --set was read as literals hold its values as strings ("16").
    return parse_literal(key, value) if isinstance(value, str) else value


def check_record(path, record, run, common, config_files):
    """A record found in the grid's folder is this run's, made with the same options.

    Raises:
        ConfigError: it holds another run, or was made with other options or config files.
    """
    if record["settings"] != run.settings:
        raise ConfigError(f"out: {path} holds the run {record['settings']}, not {run.settings}; remove it")
    # A record made with other options would silently mix two experiments in one table.
    theirs = dict(record["config"], config_files=record["config_files"])
    ours = json.loads(json.dumps(dict(common, config_files=list(config_files or []))))  # as stored
    keys = (theirs.keys() | ours.keys()) - set(DISPLAY_ONLY)
    differ = sorted(key for key in keys if _as_value(key, theirs.get(key)) != _as_value(key, ours.get(key)))
    changed = [file for file, digest in record["config_digests"].items()
               if digest and os.path.isfile(file) and one_run.file_digest(file) != digest]  # fmt: skip
    if differ or changed:
        changes = [f"{key}: {theirs.get(key)!r} there, {ours.get(key)!r} now" for key in differ]
        changes += [f"{file} changed since" for file in changed]
        raise ConfigError(f"out: {path} was made with other options ({', '.join(changes)}); use another --out or remove it")


def _execute(run, run_fn, common, config_files, checkpoint_dir, command, keep_checkpoints, execution=None):
    """Train one run and return its record.

    ``execution`` (parallel grids) holds what only changes how the run executes, not what it
    is: ``config_files`` and ``overrides`` (absolute paths, threads) for ``run_fn``. The record
    keeps the grid's own ``common`` and ``config_files``, so serial and parallel records match.
    """
    execution = execution or {}
    start = time.perf_counter()
    config_dict = dict(run_config(run, common, checkpoint_dir), **execution.get("overrides", {}))
    files = execution.get("config_files", config_files)
    # An interrupted or failed run keeps its folder: its last-epoch checkpoint is where it resumes.
    _prepare_checkpoint_dir(checkpoint_dir, _fingerprint(run, common, files))
    try:
        result = run_fn(run.model, run.dataset, list(files or []) or None, config_dict)
    except BaseException:
        if [path.name for path in checkpoint_dir.iterdir()] == ["run.json"]:
            shutil.rmtree(checkpoint_dir)  # stopped before any checkpoint: nothing to resume
        raise
    if not keep_checkpoints and checkpoint_dir.exists():
        shutil.rmtree(checkpoint_dir)  # this run's own folder: nothing else is in it
    # The run's own record (result["record"]) names its log and tensorboard folder; the grid's
    # record describes the run as the grid sees it.
    files = dict((result.get("record") or {}).get("files") or {})
    if keep_checkpoints:
        files.update({key: result.get(key) for key in ("checkpoint", "pretrained_checkpoint")})
    else:
        files.update(checkpoint=None, pretrained_checkpoint=None)  # deleted with the run's folder
    seconds = time.perf_counter() - start + result.get("seconds_before", 0.0)
    return one_run.make_record(run.run_id, run.settings, result, common, config_files, command, seconds, files,
                               result.get("resumed_at_epoch"))  # fmt: skip


def execute_task(*args):
    """``_execute`` in a Ray worker: ``ConfigError`` is turned back into itself by the executor."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")
        return _execute(*args)


def _fine_tunes_given_model(checkpoint, config_dict):
    """The S3Rec checkpoint is the fine-tuning of the run's own ``pre_model_path``, not the second
    stage of a run that pre-trained first (whose model came from its own checkpoint folder)."""
    config = checkpoint["config"]
    given = config_dict.get("pre_model_path")
    return config["train_stage"] == "finetune" and given is not None and config["pre_model_path"] == given


def run_grid(
    runs,
    out,
    common=None,
    config_files=None,
    command="",
    run_fn=None,
    keep_checkpoints=False,
    progress=True,
    workers=1,
    address=None,
    threads=None,
):
    """Execute the runs whose record is missing, writing one record each as it finishes.

    Args:
        runs (list of Run): from ``expand_grid``.
        out (str or Path): the experiment folder; records go to ``<out>/runs/<run_id>.json``,
            checkpoints to ``<out>/saved/<run_id>/`` (deleted after the run unless kept; an
            unfinished run's stay, and the next call resumes it from its last epoch).
        common (dict, optional): config overrides of every run (epochs, ``--set`` options).
        config_files (list of str, optional): YAML files of every run.
        command (str): the command line, stored in each record.
        run_fn (callable, optional): ``run_fn(model, dataset, config_file_list, config_dict)``
            returning a dict with ``test_result`` and ``best_valid_result``, as ``run_recbole_sam``
            does; defaults to ``train_and_test``. Tests pass a fake.
        keep_checkpoints (bool): keep each run's checkpoints and list them in its record.
        progress (bool): show a progress bar over the runs.
        workers (int): runs at once; above 1, or with ``address``, the runs are Ray tasks
            (``recbole_sam.tune.executor``) and ``run_fn`` must be picklable.
        address (str, optional): a Ray cluster to run the tasks on.
        threads (int, optional): torch threads (and Ray CPUs) of each parallel run; default
            an equal share of this machine's cores.

    Returns:
        list of dict: the records of all ``runs``, in their order (earlier ones read back).

    Raises:
        ConfigError: an existing record made with other options, or bad input from a run.
    """
    from tqdm import tqdm

    out, common, run_fn = Path(out), dict(common or {}), run_fn or train_and_test
    records_dir, saved_dir = out / "runs", out / "saved"
    records_dir.mkdir(parents=True, exist_ok=True)
    paths = [records_dir / f"{run.run_id}.json" for run in runs]
    records = {}
    for run, path in zip(runs, paths):
        if path.exists():
            records[path] = one_run.read_record(path)
            check_record(path, records[path], run, common, config_files)
    missing = [(run, path) for run, path in zip(runs, paths) if path not in records]
    if records:
        print(f"{out}: {len(records)} of {len(runs)} runs have a record already (skipped); {len(missing)} to run")

    bar = tqdm(total=len(runs), initial=len(records), unit="run", desc=out.name, disable=not progress)

    def finished(run, path, record):
        one_run.write_record(path, record)
        records[path] = record
        bar.update()

    args = (run_fn, common, config_files, saved_dir, command, keep_checkpoints)
    try:
        if workers > 1 or address:
            _run_parallel(missing, args, finished, workers, address, threads)
        else:
            for run, path in missing:
                bar.set_postfix_str(run.run_id)
                checkpoint_dir = saved_dir / run.run_id
                finished(run, path, _execute(run, run_fn, common, config_files, checkpoint_dir, command, keep_checkpoints))
    finally:
        bar.close()
        if saved_dir.is_dir() and not any(saved_dir.iterdir()):
            saved_dir.rmdir()
    return [records[path] for path in paths]


def _run_parallel(missing, args, finished, workers, address, threads):
    """The missing runs as Ray tasks, ``workers`` at once; records are written here as each ends.

    Workers run in other folders (on a cluster, other machines): they get absolute paths, and
    ``threads`` torch threads each (default: this machine's cores shared out).
    """
    from recbole_sam.threads import available_cores
    from recbole_sam.tune.executor import run_tasks

    run_fn, common, config_files, saved_dir, command, keep_checkpoints = args
    threads = threads or max(1, available_cores() // workers)
    jobs = [task_args(run, run_fn, common, config_files, saved_dir, command, keep_checkpoints, threads) for run, _ in missing]
    # Cancelled tasks keep their checkpoints, as interrupted serial runs do: the grid resumes them.
    run_tasks(execute_task, jobs, lambda index, record: finished(*missing[index], record), workers, address, threads)


def task_args(run, run_fn, common, config_files, saved_dir, command, keep_checkpoints, threads):
    """The arguments of ``execute_task`` for one run of a parallel grid: workers run in other
    folders (on a cluster, other machines), so they get absolute paths, and ``threads``."""
    overrides = {"threads": threads}
    for key in ("data_path", "pre_model_path"):
        if isinstance(common.get(key), str):
            overrides[key] = os.path.abspath(common[key])
    execution = {"overrides": overrides, "config_files": [os.path.abspath(file) for file in config_files or []]}
    checkpoint_dir = Path(saved_dir).resolve() / run.run_id
    return run, run_fn, common, config_files, checkpoint_dir, command, keep_checkpoints, execution
