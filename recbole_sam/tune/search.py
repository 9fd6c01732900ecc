"""``run_search``: a Ray Tune search over recbole-sam's options, from check to report.

The recipe: check everything (space, options, every value a trial can draw, the folder),
start or join Ray, check that a trial fits the cluster, run the trials (each reports every
validation; ASHA or the median rule may stop it), then test the best trial's checkpoint
once on the test split and write the table, ``best.yaml`` and the plots.
"""

import contextlib
import os
import time

from recbole_sam.errors import ConfigError, Interrupted
from recbole_sam.threads import available_cores
from recbole_sam.tune import base as base_module
from recbole_sam.tune import params as params_module
from recbole_sam.tune import ray_compat, results
from recbole_sam.tune import space as tune_space
from recbole_sam.tune.executor import start_ray
from recbole_sam.tune.spec import DEFAULT_SAMPLES, DEFAULT_SAMPLES_OTHER, SearchSpec, check_new_folder, check_options
from recbole_sam.tune.spec import check_resources, load_spec
from recbole_sam.tune.trial import METRIC, TRIAL_OVERRIDES, train_trial, trial_config_dict

DEFAULT_STORAGE = "tune_results"
# Keys the search sets itself in every trial; a space may not search them.
RESERVED = ("model", "dataset", "threads", "checkpoint_dir", *TRIAL_OVERRIDES)


class SearchInterrupted(Interrupted):
    """The search stopped before every trial ended (Ctrl-C); ``--resume`` continues it."""


def run_search(
    model=None,
    dataset=None,
    params_file=None,
    space=None,
    config_dict=None,
    config_file_list=None,
    search="random",
    scheduler="asha",
    num_samples=None,
    seed=2020,
    cpus_per_trial=1,
    gpus_per_trial=None,
    storage_path=None,
    name=None,
    address=None,
    resume=False,
    max_concurrent=None,
    callbacks=None,
    command="",
    echo=print,
):
    """Search hyperparameters with Ray Tune; test the best trial once; write the report.

    Args:
        model (str): model name, e.g. ``"SASRec"``.
        dataset (str): dataset name, e.g. ``"ml-100k"``.
        params_file (str, optional): a RecBole ``.hyper`` file (see ``recbole_sam.tune.params``).
        space (dict, optional): the same lines as a dict, ``{"rho": "loguniform -4.6,0"}``; one
            of ``params_file`` and ``space`` is needed.
        config_dict (dict, optional): overrides of every trial (``{"epochs": 20}``).
        config_file_list (list of str, optional): YAML files of every trial.
        search (str): ``random``, ``grid``, ``optuna`` or ``hyperopt``.
        scheduler (str): ``asha``, ``median`` or ``none``, over validations (epochs).
        num_samples (int, optional): trials; default 10 (grid: 1, every combination once).
        seed (int): seed of the search algorithm (each trial's training keeps the config's ``seed``).
        cpus_per_trial (int): CPUs a trial reserves, and its torch threads.
        gpus_per_trial (float, optional): GPUs a trial reserves (fractions allowed); default 1
            where Ray sees a GPU, else 0.
        storage_path (str, optional): folder of searches; default ``./tune_results``.
        name (str, optional): the search's folder under it; default ``<model>_<dataset>_<time>``.
        address (str, optional): a Ray cluster to join (default: ``RAY_ADDRESS``, else a local Ray).
        resume (bool): continue the search in ``storage_path/name``; finished trials are kept.
        max_concurrent (int, optional): at most this many trials at once.
        callbacks (list, optional): more Tune callbacks.
        command (str): the command line, written to the outputs.
        echo (callable): where progress lines go.

    Returns:
        dict: ``trials`` (the table's rows, best first), ``best`` (the winner's run record, see
        ``recbole_sam.run``, with its ``test_result``, ``trial`` and ``params``: ``best.json``), ``folder``
        and ``files`` (what was written).

    Raises:
        ConfigError: bad input, before anything is written.
        SearchInterrupted: Ctrl-C; finished trials are kept, ``resume=True`` continues.
    """
    if resume:
        spec = load_spec(storage_path or DEFAULT_STORAGE, name)
    else:
        fields = dict(search=search, scheduler=scheduler, seed=seed, cpus_per_trial=cpus_per_trial,
                      gpus_per_trial=gpus_per_trial, max_concurrent=max_concurrent, command=command)  # fmt: skip
        spec = new_spec(model, dataset, params_file, space, config_dict, config_file_list, num_samples,
                        storage_path, name, **fields)  # fmt: skip
    params, base = check_spec(spec, resume)
    metric, mode, validations = base_module.objective(base)
    echo_start(spec, params, metric, mode, validations, echo)

    started = start_ray(address, num_cpus=available_cores())
    try:
        gpus = check_resources(spec, *ray_compat.cluster_resources())
        if not resume:
            spec.save()
        grid = fit(spec, params, gpus, mode, validations, metric, callbacks, resume, echo)
        trials = results.collect(grid)
    finally:
        if started:
            import ray

            ray.shutdown()
    if len(trials) < expected_trials(spec, params) or any(results.is_unfinished(trial) for trial in trials):
        resume_with = f"--resume --storage_path {spec.storage_path} --name {spec.name}"
        raise SearchInterrupted(f"interrupted: finished trials are kept in {spec.folder}; continue with {resume_with}")
    return finish(spec, params, base, trials, metric, mode, validations, echo)


def expected_trials(spec, params):
    """int: the trials a whole search has: num_samples, times the grid's size for ``grid``."""
    grid = 1
    if spec.search == "grid":
        for param in params:
            grid *= len(param.values) if param.kind == "choice" else 1
    return spec.num_samples * grid


def new_spec(
    model, dataset, params_file, space, config_dict, config_file_list, num_samples, storage_path, name, **fields
):
    """The ``SearchSpec`` of a new search, paths made absolute (nothing checked but the space's syntax)."""
    if (params_file is None) == (space is None):
        raise ConfigError("params_file: pass a params file (or, from Python, a space dict), not both or neither")
    parsed = params_module.read_params_file(params_file) if params_file else params_module.params_from_dict(space)
    if isinstance(model, str):  # sasrec -> SASRec: the folder, best.yaml and the S3Rec check use the class's name
        from recbole_sam.registry import get_model

        model = get_model(model).__name__
    config_dict, config_file_list = base_module.absolute_config(config_dict, config_file_list)
    if num_samples is None:
        num_samples = DEFAULT_SAMPLES.get(fields.get("search"), DEFAULT_SAMPLES_OTHER)
    return SearchSpec(
        model=model,
        dataset=dataset,
        params=[[p.name, p.kind, list(p.values), p.where] for p in parsed],
        config_dict=config_dict,
        config_file_list=config_file_list,
        num_samples=num_samples,
        storage_path=os.path.abspath(storage_path or DEFAULT_STORAGE),
        name=name or f"{model}_{dataset}_{time.strftime('%Y%m%d-%H%M%S')}",
        **fields,
    )


def check_spec(spec, resume):
    """Every check that needs no Ray: options, folder, keys and values; the trials' base config.

    Returns:
        tuple: the ``Param`` list and the base ``SAMConfig``.
    """
    params = spec.param_objects()
    check_options(spec)
    for param in params:
        if param.name in RESERVED:
            reserved = ", ".join(RESERVED)
            raise ConfigError(f"{param.where}: {param.name} is set by the search itself (not allowed: {reserved})")
    if not resume:
        check_new_folder(spec)
    base = base_module.check_params(params, spec.model, spec.dataset, spec.config_file_list, spec.config_dict)
    if spec.model == "S3Rec" and base["train_stage"] != "finetune":
        # Pre-training never validates: a trial would report nothing to compare.
        raise ConfigError("model: S3Rec is searched in its fine-tuning stage; pass --train_stage=finetune "
                          "--pre_model_path=<a pre-trained checkpoint>")  # fmt: skip
    # The dataset's folder as RecBole resolved it, absolute: trials run in their own folders.
    spec.config_dict.setdefault("data_path", base_module.data_path(base))
    return params, base


def echo_start(spec, params, metric, mode, validations, echo):
    """Say what will run: the space (loguniform's range in numbers), the objective, the folder."""
    echo(f"search: {spec.search}, {spec.num_samples} sample(s), scheduler {spec.scheduler}, "
         f"{spec.cpus_per_trial} CPU(s) a trial")  # fmt: skip
    for param in params:
        echo(f"  {param.describe()}")
    echo(f"objective: {mode} validation {metric}, reported after each of up to {validations} validations")
    echo(f"folder: {spec.folder}")


def trainable_for(spec):
    """The function Tune calls per trial: ``train_trial`` with the search's base settings."""
    base = {
        "model": spec.model,
        "dataset": spec.dataset,
        "config_file_list": list(spec.config_file_list),
        "config_dict": dict(spec.config_dict),
        "threads": spec.cpus_per_trial,
        "niceness": os.nice(0),
        "command": spec.command,
    }

    def train(params):
        train_trial(params, base)

    return train


def fit(spec, params, gpus, mode, validations, metric, callbacks, resume, echo):
    """Run (or resume) the trials with Tune.

    Returns:
        ResultGrid: Tune's results.
    """
    from ray import tune

    from recbole_sam.tune.progress import progress_callback

    trainable = tune.with_resources(trainable_for(spec), {"cpu": spec.cpus_per_trial, "gpu": gpus})
    if resume:
        echo(f"resuming {spec.folder}: finished trials are kept")
        tuner = tune.Tuner.restore(spec.folder, trainable=trainable, resume_unfinished=True, restart_errored=True)
        return tuner.fit()
    lines = progress_callback(expected_trials(spec, params), metric, validations, spec.scheduler, echo)
    tune_config = tune.TuneConfig(
        metric=METRIC,
        mode=mode,
        num_samples=spec.num_samples,
        search_alg=tune_space.search_algorithm(spec.search, spec.seed, spec.max_concurrent),
        scheduler=tune_space.build_scheduler(spec.scheduler, validations),
        # Tune limits its random/grid generator itself, and wraps the other searchers.
        max_concurrent_trials=None if spec.search in ("random", "grid") else spec.max_concurrent,
    )
    run_config = ray_compat.run_config(spec.storage_path, spec.name, callbacks=[lines, *(callbacks or [])])
    param_space = tune_space.param_space(params, spec.search)
    tuner = tune.Tuner(trainable, param_space=param_space, tune_config=tune_config, run_config=run_config)
    return tuner.fit()


@contextlib.contextmanager
def working_dir(path):
    """Run a block in ``path``: RecBole writes ``log/`` and ``log_tensorboard/`` to the working directory."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def test_best(spec, trial):
    """The best trial's checkpoint on the test split: the only time a search looks at it.

    Returns:
        tuple: ``(test_result, settings)``, settings being the winner's ``best.yaml`` content.

    Raises:
        ConfigError: the checkpoint is not on this machine (a cluster without shared storage).
    """
    from recbole_sam import run
    from recbole_sam.config import SAMConfig

    checkpoint = trial["last"].get("checkpoint")
    if not checkpoint or not os.path.isfile(checkpoint):
        raise ConfigError(f"storage_path: the best trial's checkpoint {checkpoint} is not on this machine; "
                          "on a cluster, --storage_path must be a folder every node shares")  # fmt: skip
    base = {"config_dict": spec.config_dict, "threads": None}
    config_dict = trial_config_dict(base, trial["params"], os.path.dirname(os.path.dirname(checkpoint)))
    config = SAMConfig(spec.model, spec.dataset, spec.config_file_list, config_dict=config_dict)
    with working_dir(spec.folder):
        trainer, _, _, test_data = run.prepare(config)
        test_result = trainer.evaluate(test_data, load_best_model=True, model_file=checkpoint, show_progress=False)
    settings = SAMConfig(spec.model, spec.dataset, spec.config_file_list, dict(spec.config_dict, **trial["params"]))
    return {key: float(value) for key, value in test_result.items()}, dict(settings.external_config_dict)


def finish(spec, params, base, trials, metric, mode, validations, echo):
    """Test the winner, write the outputs, print the table.

    Returns:
        dict: see ``run_search``.
    """
    metric_keys = [f"{m.lower()}@{k}" for m in base["metrics"] for k in base["topk"]]
    rows = results.table_rows(trials, metric_keys, validations, spec.scheduler, mode)
    best = results.best_trial(trials, mode)
    if best is None:
        raise ConfigError(f"search: no trial reported a validation; see the trials' error.txt in {spec.folder}")
    test_result, settings = test_best(spec, best)
    remove_last_checkpoints(trials)
    # The winner's run record (see recbole_sam.run), with its test result and its trial's name.
    summary = dict(winner_record(best), test_result=test_result, trial=best["trial_id"], params=best["params"])
    files = write_outputs(spec, params, trials, rows, summary, settings, metric)
    echo(results.to_markdown(rows))
    echo(f"best trial {best['trial_id']}: {summary['params']}")
    echo(f"best valid: {summary['best_valid_result']}")
    echo(f"test result: {test_result}")
    echo("wrote " + ", ".join(files))
    return {"trials": rows, "best": summary, "folder": spec.folder, "files": files}


def winner_record(trial):
    """The run record the best trial wrote beside its checkpoint.

    Raises:
        ConfigError: the trial wrote none (it ran with another version of recbole-sam).
    """
    from recbole_sam.checkpoint import result_path
    from recbole_sam.run import read_record

    checkpoint = trial["last"]["checkpoint"]
    path = result_path(os.path.dirname(checkpoint), os.path.basename(checkpoint)[: -len(".pth")])
    if not os.path.isfile(path):
        raise ConfigError(f"search: the best trial left no run record ({path}); run the search again")
    return read_record(path)


def remove_last_checkpoints(trials):
    """Delete the ``-last.pth`` checkpoints that trials stopped by the scheduler leave: a trial
    is never resumed from its last epoch."""
    import glob

    for trial in trials:
        if trial.get("path"):
            for path in glob.glob(os.path.join(glob.escape(trial["path"]), "saved", "*-last.pth")):
                os.remove(path)


def write_outputs(spec, params, trials, rows, summary, settings, metric):
    """trials.csv, trials.md, best.yaml, best.json and the PNG plots, in the search's folder.

    Returns:
        list of str: the files written.
    """
    from recbole_sam.atomic import write_atomically, write_text
    from recbole_sam.tune import plots

    folder = spec.folder
    files = {name: os.path.join(folder, name) for name in ("trials.csv", "trials.md", "best.yaml", "best.json")}
    write_text(files["trials.csv"], results.to_csv(rows))
    title = f"# Search: {spec.model} on {spec.dataset}\n\nCommand: `{spec.command}`\n\n"
    write_text(files["trials.md"], title + results.to_markdown(rows) + "\n")
    write_text(files["best.yaml"], results.best_yaml(spec.model, spec.dataset, settings, spec.command))
    results.write_json(files["best.json"], summary)
    curves = os.path.join(folder, "curves.png")
    write_atomically(curves, lambda tmp: plots.plot_curves(trials, f"{metric} (validation)", tmp))
    written = [*files.values(), curves]
    numeric = plots.numeric_params(rows, params)
    if numeric:  # metric against rho, learning rate, ...
        written.append(os.path.join(folder, "params.png"))
        write_atomically(written[-1], lambda tmp: plots.plot_params(rows, numeric, tmp))
    return written
