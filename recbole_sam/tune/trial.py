"""One trial of a search: train with recbole-sam's config and trainer, report every validation.

The trial never touches the test split: RecBole's ``data_preparation`` builds it, the trial
drops it, and the search tests the winner's checkpoint once, at the end. Trials are quiet
(``state: WARNING``, no tqdm); each has its own run id, which names its log file, tensorboard
folder and checkpoint in the trial's folder, and writes its run record there
(``saved/<run_id>.result.json``, without a test result). A trial runs at the priority of the
search that started it (Ray starts its workers at niceness 15).
"""

import os
import time
import warnings

# Set in every trial, whatever the user's config: output belongs in the trial's folder.
TRIAL_OVERRIDES = {"state": "WARNING", "show_progress": False}
METRIC = "valid_score"  # the key Tune optimises: the value of the config's valid_metric


def trial_config_dict(base, params, trial_dir):
    """The ``config_dict`` of one trial: the search's overrides, the sampled values, quiet
    output, the trial's threads and its own checkpoint folder.

    Args:
        base (dict): ``config_dict`` and ``threads`` of the search (see ``search.SearchSpec``).
        params (dict): the values Tune sampled for this trial.
        trial_dir (str): the trial's folder.
    """
    return dict(
        base["config_dict"],
        **params,
        **TRIAL_OVERRIDES,
        threads=base["threads"],
        checkpoint_dir=os.path.join(trial_dir, "saved"),
    )


def epoch_result(trainer):
    """dict: what a trial reports after a validation.

    ``valid_score`` (the objective), every validation metric, ``epoch``, ``train_loss`` and,
    with SAM, ``sharpness`` and ``ascent_norm``; then the best so far (``best_valid_score``,
    ``best_epoch``, ``best_<metric>``), whether RecBole's early stopping ends the trial now
    (``early_stopped``), and the best checkpoint (``checkpoint``).
    """
    entry = {key: value for key, value in trainer.valid_curve[-1].items() if key != "ascents"}
    summary = trainer.run_summary()
    best = next(e for e in reversed(summary["curve"]) if e["epoch"] == summary["best_epoch"])
    result = dict(entry, best_epoch=summary["best_epoch"], best_valid_score=best["valid_score"])
    metric_keys = [key for key in best if "@" in key]
    result.update({f"best_{key}": best[key] for key in metric_keys})
    result["early_stopped"] = trainer.cur_step > trainer.stopping_step
    result["checkpoint"] = os.path.abspath(trainer.saved_model_file)
    return {METRIC if key == "valid_score" else key: value for key, value in result.items()}


def train_trial(params, base, report=None):
    """Train one sampled configuration, reporting after every validation.

    Args:
        params (dict): the sampled hyperparameters.
        base (dict): ``model``, ``dataset``, ``config_file_list`` (absolute paths),
            ``config_dict``, ``threads`` and ``niceness`` (the search's) of the search.
        report (callable, optional): receives each epoch's dict; default: Tune's, through
            ``ray_compat.report``. Tests pass a list's ``append``.

    Returns:
        dict: the trial's run record (see ``recbole_sam.run``).
    """
    from recbole_sam import run
    from recbole_sam.checkpoint import result_path
    from recbole_sam.config import SAMConfig
    from recbole_sam.tune import ray_compat

    started = time.perf_counter()
    restore_priority(base.get("niceness"))
    report = report or ray_compat.report
    trial_dir = ray_compat.trial_dir() if report is ray_compat.report else os.getcwd()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")  # RecBole's noise, every epoch
        config_dict = trial_config_dict(base, params, trial_dir)
        config = SAMConfig(base["model"], base["dataset"], base["config_file_list"], config_dict=config_dict)
        trainer, train_data, valid_data, _ = run.prepare(config)  # the test split stays unused

        def save_record():
            # After every validation: a trial the scheduler stops ends inside report().
            result = {"best_valid_result": trainer.best_valid_result, "history": trainer.run_summary(),
                      "checkpoint": trainer.saved_model_file}  # fmt: skip
            seconds = time.perf_counter() - started
            record = run.run_record(config, result, base["config_file_list"], base.get("command", ""), seconds)
            record["settings"].update(params)  # what tells the trials apart: the values drawn
            for key in params:
                record["config"].pop(key, None)
            run.write_record(result_path(config["checkpoint_dir"], config["run_id"]), record)
            return record

        try:
            trainer.fit(
                train_data,
                valid_data,
                saved=True,
                show_progress=False,
                callback_fn=lambda epoch, score: (save_record(), report(epoch_result(trainer))),
            )
        finally:  # a trial is never resumed from its last epoch: a resumed search restarts it
            if os.path.isfile(trainer.last_model_file):
                os.remove(trainer.last_model_file)
        return save_record()


def restore_priority(niceness):
    """Run at the search's priority: Ray starts its worker processes at niceness 15, so on a
    busy machine a trial would yield to every other job. Lowering the niceness needs the right
    (root, or CAP_SYS_NICE); without it the trial keeps Ray's, as before.

    Args:
        niceness (int, optional): the search's niceness; None leaves the priority alone.
    """
    if niceness is None:
        return
    current = os.nice(0)
    if current > niceness:
        try:
            os.nice(niceness - current)
        except OSError:
            pass
