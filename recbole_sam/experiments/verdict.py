"""Does SAM help SASRec (Table 1), CL4SRec and S3Rec (Table 2)? The protocol of issue 9 and the
ablation of its corrections, as resumable grids on the grids' one executor
(``recbole_sam.tune.executor``: Ray tasks).

Verdict, for one model and each backbone (the paper's BCE loss, and CE), on the paper setting
(``properties/paper/<dataset>.yaml``, plus the model's overlay of ``MODEL_OVERLAYS``):
  1. selection, seed 1: plain, and SAM at each rho; rho* = the SAM run with the best validation
     score (``valid_metric``; the test set plays no part);
  2. verdict, the other seeds: plain and SAM at rho*, paired (same seed: same initial weights
     and batch order); with ``sweep``, SAM at every rho on every seed.
Plain runs of step 2 need no rho*, so they start at once; SAM runs of step 2 start as soon as
their backbone's selection is complete. Records go to ``<out>/<dataset>/<backbone>/runs/``
(one per finished run, in the one schema of ``recbole_sam.run``); a record present is a run
done, so the same call resumes.

Ablation: the padding/position/negative corrections, each alone, none and all together, plain
and SAM at one rho, one grid each under ``<out>/<dataset>/<correction>/``.
"""

import os
import tarfile
import time
from pathlib import Path

from recbole_sam.errors import ConfigError
from recbole_sam.experiments import paired, runner
from recbole_sam.run import read_record, write_record

BACKBONES = {"BCE": {}, "CE": {"loss_type": "CE"}}
# The paper-setting overlay of each model, read after the dataset's file (which is SASRec's setting).
# S3Rec is fine-tuned: its runs need --set pre_model_path=<checkpoint> (and pre_model_format).
MODEL_OVERLAYS = {"SASRec": (), "CL4SRec": ("CL4SRec.yaml",), "S3Rec": ("S3Rec-finetune.yaml",)}
RHOS = (0.01, 0.03, 0.1, 0.3, 1.0)
SEEDS = (2, 3, 4, 5, 6)
TRAINERS = ("plain", "sam")
SELECTION_SEED = paired.SELECTION_SEED
# The corrections start from RecBole's choices; each row switches one (or all) to S3Rec's.
ABLATION_BASE = {
    "padding_side": "right", "position_from_prediction": False, "zero_padding": False,
    "mask_padding_positions": False, "neg_exclude": "input",
}  # fmt: skip
ABLATIONS = {
    "none": {},
    "left": {"padding_side": "left"},
    "from_prediction": {"position_from_prediction": True},
    "zero_padding": {"zero_padding": True},
    "mask_padding_positions": {"mask_padding_positions": True},
    "neg_user": {"neg_exclude": "user"},
    "all": {"padding_side": "left", "zero_padding": True, "mask_padding_positions": True, "neg_exclude": "user"},
}
QUIET = {"show_progress": False, "state": "WARNING"}


def paper_config_files(dataset, model="SASRec"):
    """list of str: the paper setting's YAML files of ``model`` on ``dataset`` (absolute)."""
    paper = Path(__file__).resolve().parent.parent.parent / "properties" / "paper"
    return [str(paper / f"{dataset}.yaml")] + [str(paper / name) for name in MODEL_OVERLAYS[model]]


def model_run(dataset, trainer, seed, rho=None, model="SASRec", grid_key="rho"):
    """runner.Run: ``model`` with ``trainer`` on ``dataset``; SAM runs carry their rho (or the
    value of another ``grid_key``)."""
    overrides = () if rho is None else ((grid_key, float(rho)),)
    return runner.Run(dataset, model, trainer, int(seed), overrides)


def check_grid_key(grid_key, sam_variant):
    """Raise ConfigError unless the SAM arm's grid varies what ``sam_variant`` uses: SAF takes no
    ascent step (its rho would change nothing), every other variant has no ``saf_weight``."""
    if grid_key not in paired.GRID_KEYS:
        raise ConfigError(f"grid_key: {grid_key!r} is not one of {', '.join(paired.GRID_KEYS)}")
    wanted = "saf_weight" if sam_variant == "saf" else "rho"
    if grid_key != wanted:
        raise ConfigError(f"grid_key: sam_variant {sam_variant} is selected on {wanted}, not {grid_key}; set --grid-key {wanted}")


def log(message):
    print(time.strftime("%H:%M:%S"), message, flush=True)


class Grid:
    """The runs of one verdict or ablation folder, ``<out>/<dataset>/<name>``: its common
    options, its records (read once, added as runs finish) and its jobs for the executor."""

    def __init__(self, folder, common, config_files, run_fn=None, keep_checkpoints=False):
        self.folder, self.common, self.config_files = Path(folder), common, config_files
        self.keep_checkpoints = keep_checkpoints  # each run's model stays in <folder>/saved/<run_id>/
        self.run_fn = run_fn or runner.train_and_test
        self.records = {}
        for path in sorted((self.folder / "runs").glob("*.json")):
            self.records[path.stem] = read_record(path)

    def has(self, run):
        """bool: the run has a record; it must be this run's (its settings are checked)."""
        record = self.records.get(run.run_id)
        if record is not None and record["settings"] != run.settings:
            path = self.folder / "runs" / f"{run.run_id}.json"
            raise ConfigError(f"out: {path} holds the run {record['settings']}, not {run.settings}; remove it")
        return record is not None

    def job(self, run, command, threads):
        return runner.task_args(run, self.run_fn, self.common, self.config_files, self.folder / "saved",
                                command, self.keep_checkpoints, threads)  # fmt: skip

    def add(self, run, record):
        write_record(self.folder / "runs" / f"{run.run_id}.json", record)
        self.records[run.run_id] = record


def run_grids(tasks, grids, command, workers=1, threads=1, address=None, deadline=None, archive=None, more=None,
              priority=None):  # fmt: skip
    """Execute ``tasks`` (``(grid_name, run)`` pairs without a record) as Ray tasks, writing each
    record as its run ends; a failed run is logged and the others go on.

    Args:
        tasks (list of tuple): ``(grid_name, Run)``.
        grids (dict): ``{grid_name: Grid}``.
        command (str): the command line, for the records.
        workers (int): runs at once.
        threads (int): torch threads of each run.
        address (str, optional): a Ray cluster.
        deadline (float, optional): seconds after which no run starts (a minute later the
            driver stops; unfinished runs resume from their last epoch next time).
        archive (str, optional): after each finished run, write all records to this .tar.gz.
        more (callable, optional): ``more()`` after each finished run returns further tasks.
        priority (callable, optional): sort key of a task; the executor starts the first.
    """
    from recbole_sam.tune.executor import run_tasks

    tasks, finished = list(tasks), []
    folders = ", ".join(sorted({str(grids[name].folder / "runs") for name, _ in tasks}))
    # A Beauty run takes minutes: say at once what will run, so a quiet log is not a stuck one.
    if tasks:
        log(f"{len(tasks)} runs to do, {workers} at a time; records go to {folders}")
    else:
        log("nothing to do: every run has a record")

    def job(task):
        name, run = task
        return grids[name].job(run, command, threads)

    def done(index, record):
        name, run = tasks[index]
        grids[name].add(run, record)
        finished.append(index)
        history = record["history"] or {}
        log(f"[{len(finished)}/{len(tasks)}] {name} {run.trainer} seed {run.seed} {dict(run.overrides)}: "
            f"test {record['test_result']}, best epoch {history.get('best_epoch')}, stopped {history.get('stopping_epoch')}, "
            f"cap {history.get('hit_cap')}, {record['seconds']:.0f} s")  # fmt: skip
        write_archive(archive, grids)
        new = more() if more else []
        tasks.extend(new)
        if new:
            log(f"{len(new)} more runs to do, {len(tasks) - len(finished)} left")
        return [job(task) for task in new]

    def failed(index, error):  # one broken run must not lose the others
        name, run = tasks[index]
        finished.append(index)
        log(f"[{len(finished)}/{len(tasks)}] {name} {run.run_id}: FAILED {error!r}")

    try:
        if tasks:
            until = None if deadline is None else time.time() + deadline
            order = (lambda index: priority(tasks[index])) if priority else None
            jobs = [job(task) for task in tasks]
            run_tasks(runner.execute_task, jobs, done, workers, address, threads, failed, until, order)
    finally:
        for grid in grids.values():  # an unfinished run's folder stays: it resumes from there
            saved = grid.folder / "saved"
            if saved.is_dir() and not any(saved.iterdir()):
                saved.rmdir()
    write_archive(archive, grids)


def write_archive(archive, grids):
    """The records of every grid (not the checkpoints of running runs) as one .tar.gz."""
    if not archive:
        return
    partial = archive + ".partial"
    with tarfile.open(partial, "w:gz") as tar:
        for grid in grids.values():
            if (grid.folder / "runs").is_dir():
                # <dataset>/<name>/runs/...: the folder layout under --out
                tar.add(grid.folder / "runs", arcname=str(Path(grid.folder.parent.name, grid.folder.name, "runs")))
    os.replace(partial, archive)


def common_config(threads, data_path=None, settings=None, backbone=None):
    """The options of every run of a grid: quiet, its threads, the backbone's loss, ``--set``."""
    common = dict(QUIET, threads=threads, **BACKBONES.get(backbone, {}))
    if data_path:
        common["data_path"] = data_path
    common.update(settings or {})
    return common


def run_verdict(dataset="ml-100k", out="runs/verdict", backbones=tuple(BACKBONES), rhos=RHOS, seeds=SEEDS,
                trainers=TRAINERS, sweep=False, data_path=None, settings=None, workers=1, threads=1, address=None,
                deadline=None, archive=None, command="", run_fn=None, model="SASRec", keep_checkpoints=False,
                grid_key="rho"):  # fmt: skip
    """Run the verdict's protocol (see the module doc); what has a record is skipped.

    Args:
        dataset (str): dataset name.
        out (str): the folder; records go to ``<out>/<dataset>/<backbone>/runs/``.
        backbones (list of str): of ``BACKBONES``.
        rhos (list of float): the selection's radii.
        seeds (list of int): the verdict's seeds (none: the selection only).
        trainers (list of str): start only these arms' runs.
        sweep (bool): SAM at every rho on every seed, not only at rho* (Figure 3 with intervals).
        data_path (str, optional): folder of converted datasets.
        settings (dict, optional): extra options of every run (``--set``, read as literals).
        workers, threads, address, deadline, archive: see ``run_grids``.
        command (str): the command line, for the records.
        run_fn (callable, optional): executes one run (see ``runner.run_grid``); tests pass a fake.
        model (str): of ``MODEL_OVERLAYS``.
        keep_checkpoints (bool): keep each run's trained model, ``<out>/<dataset>/<backbone>/saved/<run_id>/``,
            named in its record (``files.checkpoint``) for ``run_analysis.py``.
        grid_key (str): what ``rhos`` set in the SAM arm: ``rho``, or ``saf_weight`` for
            ``sam_variant: saf`` (which has no radius); chosen on validation the same way.

    Returns:
        dict: ``{backbone: rho*}`` of the backbones whose selection is complete.

    Raises:
        ConfigError: an unknown model, options the model refuses, or a grid key that the SAM
            variant does not use (before any training).
    """
    from recbole_sam.config import SAMConfig
    from recbole_sam.run import check_before_writing

    if model not in MODEL_OVERLAYS:
        raise ConfigError(f"model: {model!r} has no paper setting; allowed: {', '.join(MODEL_OVERLAYS)}")
    check_grid_key(grid_key, (settings or {}).get("sam_variant", "sam"))
    files = paper_config_files(dataset, model)
    grids = {
        b: Grid(Path(out) / dataset / b, common_config(threads, data_path, settings, b), files, run_fn, keep_checkpoints)
        for b in backbones
    }
    base = dict(grids[backbones[0]].common, state="ERROR")
    config = SAMConfig(model, dataset, files, base)  # bad input fails here, once, before any run
    check_before_writing(config)  # files too: the dataset's, S3Rec's pre-trained checkpoint
    valid_key = config["valid_metric"].lower()

    def arm(trainer, seed, rho=None):
        return model_run(dataset, trainer, seed, rho, model, grid_key)

    def todo(backbone, run):
        return run.trainer in trainers and not grids[backbone].has(run)

    first = [(b, arm("plain", SELECTION_SEED)) for b in backbones]
    first += [(b, arm("sam", SELECTION_SEED, rho)) for b in backbones for rho in rhos]
    first += [(b, arm("plain", seed)) for seed in seeds for b in backbones]
    if sweep:  # every rho is paired, so no SAM run waits for rho*
        first += [(b, arm("sam", seed, rho)) for seed in seeds for b in backbones for rho in rhos]
    waiting, chosen = ([] if sweep else list(backbones)), {}

    def rho_star_runs():
        new = []
        for backbone in list(waiting):
            rho = paired.choose_rho(paired.with_history(grids[backbone].records.values()), valid_key, rhos)
            if rho is not None:
                waiting.remove(backbone)
                chosen[backbone] = rho
                log(f"{backbone}: rho* = {rho} (best validation {valid_key} of seed {SELECTION_SEED})")
                new += [(backbone, run) for seed in seeds for run in [arm("sam", seed, rho)]]
        return [task for task in new if todo(*task)]

    def priority(task):
        # Selection first (by backbone), then the verdict seed by seed, each seed's pair together,
        # so that an interrupted grid holds whole pairs.
        backbone, run = task
        order, is_sam = list(backbones).index(backbone), run.trainer != "plain"
        return (0, order, is_sam) if run.seed == SELECTION_SEED else (1, list(seeds).index(run.seed), order, is_sam)

    tasks = [task for task in first if todo(*task)] + rho_star_runs()
    run_grids(tasks, grids, command, workers, threads, address, deadline, archive, rho_star_runs, priority)
    return chosen


def run_ablation(dataset="ml-100k", out="runs/ablation", rho=0.03, seeds=(2,), names=tuple(ABLATIONS), data_path=None,
                 workers=1, threads=1, address=None, command=""):  # fmt: skip
    """Each correction of ``names`` on top of the paper setting, plain and SAM at ``rho``, on
    ``seeds``: one grid per correction, ``<out>/<dataset>/<correction>/runs/``.

    Raises:
        ConfigError: an unknown correction.
    """
    unknown = [name for name in names if name not in ABLATIONS]
    if unknown:
        raise ConfigError(f"ablation: unknown correction {unknown[0]!r}; allowed: {', '.join(ABLATIONS)}")
    files = paper_config_files(dataset)
    runs = runner.expand_grid(runner.table_arms(["SASRec"], list(TRAINERS)), [dataset], list(seeds))
    grids, tasks = {}, []
    for name in names:
        settings = dict(ABLATION_BASE, **ABLATIONS[name], rho=float(rho))
        grids[name] = Grid(Path(out) / dataset / name, common_config(threads, data_path, settings), files)
        runner.validate_grid(runs, grids[name].common, files)  # bad input fails before any training
        tasks += [(name, run) for run in runs if not grids[name].has(run)]
    run_grids(tasks, grids, command, workers, threads, address)


def load_grids(out, dataset, names):
    """``{name: records}`` of the grids ``<out>/<dataset>/<name>`` that exist, in the order of ``names``."""
    from recbole_sam.run import load_records

    return {name: load_records(Path(out) / dataset / name / "runs") for name in names}
