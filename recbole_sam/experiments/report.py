"""From run records to tables: per-run rows (CSV), mean ± std over seeds, and the relative
improvement of each +SAM variant over its plain backbone (SAMRec over SASRec, ...).

Pure functions on plain dicts; nothing here trains, imports RecBole or draws.
"""

import csv
import io
import json
import statistics

METRICS = ("hit@10", "ndcg@10")
METRIC_NAMES = {"hit@10": "HR@10", "ndcg@10": "NDCG@10"}
# The paper's Table 1 order; other models follow, by name.
MODEL_ORDER = ("SASRec", "S3Rec", "CL4SRec")
TRAINER_ORDER = ("plain", "sam")
# The settings every run has; the others (rho, train_fraction) are what an experiment sweeps.
IDENTITY_KEYS = ("dataset", "model", "trainer", "seed")


def display_name(model, trainer):
    """The paper's names: SASRec + sam is "SAMRec", other models + sam are "<model>+SAM"."""
    if trainer == "plain":
        return model
    if trainer == "sam":
        return "SAMRec" if model == "SASRec" else f"{model}+SAM"
    return f"{model}+{trainer}"


def override_keys(records):
    """The experiment's own settings (rho, train_fraction, ...) that any record has, sorted."""
    return sorted({key for record in records for key in record["settings"]} - set(IDENTITY_KEYS))


def to_rows(records):
    """One flat row per run: its settings, display name, test and validation metrics, seconds.

    Returns:
        list of dict: rows with the same keys: ``run_id``, ``name``, the settings (empty where a
        run lacks one, e.g. a plain run's rho), the test metrics, ``valid_<metric>``, ``seconds``.
    """
    settings_keys = (*IDENTITY_KEYS, *override_keys(records))
    metrics = list(dict.fromkeys(key for record in records for key in record["test_result"]))
    valid = list(dict.fromkeys(key for record in records for key in record["best_valid_result"]))
    rows = []
    for record in records:
        settings = record["settings"]
        row = {"run_id": record["run_id"], "name": display_name(settings["model"], settings["trainer"])}
        row.update({key: settings.get(key, "") for key in settings_keys})
        row.update({key: record["test_result"].get(key, "") for key in metrics})
        row.update({f"valid_{key}": record["best_valid_result"].get(key, "") for key in valid})
        history = record.get("history") or {}
        row.update({key: history.get(key, "") for key in ("best_epoch", "stopping_epoch", "hit_cap")})
        row["seconds"] = record["seconds"]
        rows.append(row)
    return rows


def to_csv(rows):
    """str: the rows as CSV text, with a header."""
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def mean_std(values):
    """``(mean, std)`` with the sample std (n - 1); ``std`` is ``None`` for a single value."""
    values = [float(value) for value in values]
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def summarize(records, metrics=METRICS):
    """Mean ± std over seeds of each distinct setting, with each +SAM variant's relative
    improvement over its plain backbone on the same dataset and the same other settings.

    Args:
        records (list of dict): run records.
        metrics (tuple of str): the metrics to summarise.

    Returns:
        list of dict: one group per setting, in table order, each with ``dataset``, ``model``,
        ``trainer``, ``name``, ``overrides`` (dict), ``n`` (seeds), ``mean`` and ``std`` (dicts
        by metric), and, for a +SAM variant whose backbone ran, ``backbone`` (its name) and
        ``improvement`` (dict by metric, in percent; ``None`` where the backbone scored 0), and
        ``cap_hits`` ("k/n": runs that trained to the epoch cap without early stopping; "?" when
        a record predates run histories).
    """
    grouped, cap_hits = {}, {}
    for record in records:
        settings = dict(record["settings"])
        seed = settings.pop("seed")
        key = json.dumps(settings, sort_keys=True)
        grouped.setdefault(key, (settings, {}))[1][seed] = record["test_result"]
        hit_cap = (record.get("history") or {}).get("hit_cap")  # None: an old record that does not say
        cap_hits.setdefault(key, []).append(hit_cap)
    groups = []
    for key, (settings, by_seed) in grouped.items():
        group = {name: settings.pop(name) for name in ("dataset", "model", "trainer")}
        group.update(name=display_name(group["model"], group["trainer"]), overrides=settings, n=len(by_seed))
        known = [hit for hit in cap_hits[key] if hit is not None]
        group["cap_hits"] = f"{sum(known)}/{len(known)}" if len(known) == len(cap_hits[key]) else "?"
        stats = {metric: mean_std(result[metric] for result in by_seed.values()) for metric in metrics}
        group["mean"] = {metric: stats[metric][0] for metric in metrics}
        group["std"] = {metric: stats[metric][1] for metric in metrics}
        groups.append(group)
    for group in groups:
        backbone = find_backbone(group, groups)
        if backbone is not None:
            group["backbone"] = backbone["name"]
            group["improvement"] = {
                metric: relative_improvement(group["mean"][metric], backbone["mean"][metric]) for metric in metrics
            }
    return sorted(groups, key=_table_order)


def find_backbone(group, groups):
    """The plain group that ``group`` (a +SAM variant) improves on: same dataset and model,
    and the same value of every setting that the plain group has (it has no rho)."""
    if group["trainer"] == "plain":
        return None
    candidates = [
        other
        for other in groups
        if other["trainer"] == "plain"
        and all(other[key] == group[key] for key in ("dataset", "model"))
        and all(group["overrides"].get(key) == value for key, value in other["overrides"].items())
    ]
    # The closest match: with train_fraction 0.6, the plain run at 0.6 rather than one without it.
    return max(candidates, key=lambda other: len(other["overrides"]), default=None)


def relative_improvement(value, baseline):
    """``(value - baseline) / baseline`` in percent; ``None`` when the baseline is 0."""
    return None if baseline == 0 else 100.0 * (value - baseline) / baseline


def _table_order(group):
    model = group["model"]
    model_rank = (MODEL_ORDER.index(model), "") if model in MODEL_ORDER else (len(MODEL_ORDER), model)
    trainer = group["trainer"]
    trainer_rank = (TRAINER_ORDER.index(trainer), "") if trainer in TRAINER_ORDER else (len(TRAINER_ORDER), trainer)
    # Settings first, so that a sweep reads down its values (the plain baseline, without rho, on top).
    overrides = tuple((key, value) for key, value in sorted(group["overrides"].items()))
    return group["dataset"], len(overrides), overrides, model_rank, trainer_rank


def format_mean_std(mean, std):
    """``0.0563 ± 0.0012``, or ``0.0563`` for a single seed."""
    return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"


def format_setting(value):
    """``1`` rather than ``1.0`` for rho 1, as the paper writes it."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def format_improvement(value):
    """``+13.32%``; an empty cell for no backbone, ``n/a`` when the backbone scored 0."""
    return "n/a" if value is None else f"{value:+.2f}%"


def markdown_tables(groups, metrics=METRICS):
    """One Markdown table per dataset: model, the experiment's settings (rho, train_fraction)
    if any, seeds, mean ± std of each metric, and each +SAM variant's improvement.

    Args:
        groups (list of dict): from ``summarize``.
        metrics (tuple of str): the metrics to show.

    Returns:
        str: Markdown, one ``### <dataset>`` section per dataset.
    """
    keys = sorted({key for group in groups for key in group["overrides"]})
    names = [METRIC_NAMES.get(metric, metric) for metric in metrics]
    header = ["model", *keys, "n", "hit epoch cap", *names, "vs", *(f"Improv. {name}" for name in names)]
    lines = []
    for dataset in dict.fromkeys(group["dataset"] for group in groups):
        lines += [f"### {dataset}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for group in (group for group in groups if group["dataset"] == dataset):
            improvement = group.get("improvement")
            settings = [format_setting(group["overrides"].get(key, "—")) for key in keys]
            cells = [group["name"], *settings, str(group["n"]), group.get("cap_hits", "?")]
            cells += [format_mean_std(group["mean"][metric], group["std"][metric]) for metric in metrics]
            cells.append(group.get("backbone", ""))
            cells += [format_improvement(improvement[metric]) if improvement else "" for metric in metrics]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
