"""A finished search as files: the trials table (CSV, Markdown), ``best.yaml``, ``best.json``.

Works on plain dicts, one per trial (``collect`` turns Tune's results into them), so it needs
no Ray: ``trial_id``, ``status``, ``params``, ``last`` (the last reported result), ``history``
(every reported result), ``seconds``, ``path`` and ``error``.
"""

import csv
import io

import yaml

from recbole_sam import atomic

ENDED_BY = {"early": "early stopping", "cap": "all epochs", "error": "error", "unfinished": "unfinished"}


def collect(result_grid):
    """list of dict: one per trial of Tune's ``ResultGrid`` (see the module doc)."""
    from recbole_sam.tune import ray_compat

    histories, paths = {}, {}
    for result in result_grid:
        frame = getattr(result, "metrics_dataframe", None)
        history = frame.to_dict("records") if frame is not None and len(frame) else []
        trial_id = (result.metrics or {}).get("trial_id") or (history[-1].get("trial_id") if history else None)
        histories[trial_id], paths[trial_id] = history, ray_compat.result_path(result)
    trials = []
    for trial in ray_compat.trials(result_grid):
        last = trial["last"]
        trials.append(
            dict(
                trial,
                params=trial.pop("config"),
                history=histories.get(trial["trial_id"], []),
                seconds=float(last.get("time_total_s") or 0.0),
                path=paths.get(trial["trial_id"]),
            )
        )
    return trials


def is_unfinished(trial):
    """bool: the trial neither ended (Tune's ``done``: finished, early-stopped or stopped by the
    scheduler) nor failed; Tune marks such trials TERMINATED when Ctrl-C ends the search."""
    return trial["status"] != "ERROR" and not trial["last"].get("done")


def ended_by(trial, validations, scheduler):
    """str: why a trial ended: early stopping, all epochs, the scheduler, an error, or unfinished."""
    last = trial["last"]
    if trial["error"] or trial["status"] == "ERROR":
        return ENDED_BY["error"]
    if is_unfinished(trial):
        return ENDED_BY["unfinished"]
    if last.get("early_stopped"):
        return ENDED_BY["early"]
    if last.get("training_iteration", 0) >= validations:
        return ENDED_BY["cap"]
    return f"{scheduler} stopped it"


def table_rows(trials, metric_keys, validations, scheduler, mode):
    """list of dict: the trials table, best first (by the best validation score)."""
    rows = []
    for trial in trials:
        last = trial["last"]
        row = {"trial": trial["trial_id"], **trial["params"]}
        row["best_valid_score"] = last.get("best_valid_score")
        row.update({f"valid_{key}": last.get(f"best_{key}") for key in metric_keys})
        row["best_epoch"] = last.get("best_epoch")
        row["validations"] = last.get("training_iteration", 0)
        row["ended_by"] = ended_by(trial, validations, scheduler)
        row["seconds"] = round(trial["seconds"], 1)
        rows.append(row)
    sign = -1 if mode == "max" else 1
    return sorted(rows, key=lambda row: (row["best_valid_score"] is None, sign * (row["best_valid_score"] or 0)))


def best_trial(trials, mode):
    """dict: the trial with the best validation score (``None`` if none reported)."""
    scored = [trial for trial in trials if trial["last"].get("best_valid_score") is not None]
    if not scored:
        return None
    pick = max if mode == "max" else min
    return pick(scored, key=lambda trial: trial["last"]["best_valid_score"])


def _cell(value):
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 or abs(value) >= 1e4 else f"{value:.4f}".rstrip("0").rstrip(".")
    return "" if value is None else str(value)


def to_csv(rows):
    """str: the rows as CSV, full precision."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def to_markdown(rows):
    """str: the rows as a Markdown table, numbers rounded for reading."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(key)) for key in columns) + " |" for row in rows]
    return "\n".join(lines)


def _plain(value):
    """YAML-safe Python values (numpy scalars and tuples become floats, ints and lists)."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def best_yaml(model, dataset, settings, command):
    """str: ``best.yaml``, a property file that ``run_recbole_sam.py --config_files=best.yaml`` trains.

    Args:
        model (str): model name.
        dataset (str): dataset name.
        settings (dict): the search's config files and overrides with the winner's values
            (a ``SAMConfig``'s ``external_config_dict``).
        command (str): the search's command, for the header.
    """
    header = (
        f"# The best configuration of a recbole-sam search: {command}\n"
        f"# Train it: python run_recbole_sam.py --model {model} --dataset {dataset} --config_files=best.yaml\n"
    )
    body = yaml.safe_dump(_plain(dict(model=model, dataset=dataset, **settings)), sort_keys=False, default_flow_style=None)
    return header + body


def write_json(path, data):
    """Write ``data`` as JSON, numpy values as plain numbers, atomically."""
    atomic.write_json(path, _plain(data))
