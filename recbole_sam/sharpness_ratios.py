"""The ratio table: sharpness measurements of several models over several seeds, side by side.

Reads the JSON files of ``run_analysis.py sharpness`` (any number, each with any checkpoints)
and writes one Markdown table per objective: each measure's mean ± std over seeds for every
model, and the ratio baseline ÷ each other model with a 95% interval.

How the interval is made (sharpness measures are positive and compared as ratios, so on logs):
where both models were measured on the same seeds (training seed and measurement seed), the
per-seed log-ratios log(base_s / other_s) get a t-interval, mean ± t(0.975, n−1)·sd/√n (paired);
otherwise the difference of the two models' mean logs gets Welch's t-interval (unpaired). Both
are exponentiated, so the ratio shown is the geometric mean of the ratios. With one seed on
either side there is a ratio but no interval; a measure with a value ≤ 0 gets no ratio.
"""

import json
import math
from collections import defaultdict

from recbole_sam.errors import ConfigError

# (key in the JSON results, name in the table), in table order.
MEASURES = [
    ("loss", "L(Θ)"),
    ("top_eigenvalue", "top eigenvalue λ (largest magnitude)"),
    ("max_eigenvalue", "largest eigenvalue λ_max"),
    ("hessian_trace", "Hessian trace"),
    ("rho_sharpness", "rho-sharpness"),
    ("top_eigenvalue_over_loss", "λ / L (scale-free)"),
    ("max_eigenvalue_over_loss", "λ_max / L (scale-free)"),
    ("hessian_trace_over_loss", "trace / L (scale-free)"),
    ("rho_sharpness_over_loss", "rho-sharpness / L (scale-free)"),
    ("loss_rise", "loss rise at the radius"),
    ("relative_loss_rise", "relative loss rise (scale-free)"),
]
IGNORED_SETTINGS = ("seed", "objective")  # may differ between the inputs of one table


def read_measurements(paths):
    """The measurements in the JSON outputs of ``run_analysis.py sharpness``.

    Args:
        paths (list of str): the JSON files.

    Returns:
        list of dict: one per measured checkpoint: ``objective``, ``label``, ``replicate``
        (``(training seed, measurement seed)``: what pairs two models' measurements),
        ``settings``, ``path`` and ``values`` (measure key -> number or None).

    Raises:
        ConfigError: an unreadable file, or one that is not such an output.
    """
    rows = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                report = json.load(f)
            settings, results = report["settings"], report["results"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ConfigError(f"inputs: {path!r} is not a sharpness output ({type(error).__name__}: {error})") from None
        for result in results:
            rows.append(
                dict(
                    objective=settings.get("objective", "own"),
                    label=result["label"],
                    replicate=(result.get("train_seed"), settings.get("seed")),
                    settings={k: v for k, v in settings.items() if k not in IGNORED_SETTINGS},
                    path=path,
                    values=_values(result),
                )
            )
    return rows


def _values(result):
    values = {key: result.get(key) for key, _ in MEASURES}
    loss = values["loss"]
    top = values["top_eigenvalue"]
    if values["max_eigenvalue"] is None and top is not None and top >= 0:
        values["max_eigenvalue"] = top  # an older output: the dominant eigenvalue is the largest when ≥ 0
    for key in ("top_eigenvalue", "max_eigenvalue", "hessian_trace", "rho_sharpness"):
        # Outputs written before the scale-free measures existed: the quotient from its parts.
        if values[f"{key}_over_loss"] is None and values[key] is not None and loss is not None and loss > 0:
            values[f"{key}_over_loss"] = values[key] / loss
    return values


def _mean_std(values):
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def ratio_interval(base, other, level=0.95):
    """The ratio base ÷ other of one measure and its ``level`` interval (see the module's text).

    Args:
        base (dict): replicate -> value, the baseline model's measurements.
        other (dict): replicate -> value, the other model's.
        level (float): the interval's coverage.

    Returns:
        tuple: ``(ratio, low, high, how)``; ``low`` and ``high`` are ``None`` without an
        interval, all three numbers are ``None`` without a ratio; ``how`` says which case.
    """
    from scipy import stats  # here: importing scipy.stats takes a while, and only this needs it

    if any(v is None or v <= 0 for v in (*base.values(), *other.values())):
        return None, None, None, "values not all > 0"
    quantile = 0.5 + level / 2
    if set(base) == set(other) and len(base) >= 2:
        logs = [math.log(base[k]) - math.log(other[k]) for k in base]
        mean, sd = _mean_std(logs)
        half = stats.t.ppf(quantile, len(logs) - 1) * sd / math.sqrt(len(logs))
        how = "paired"
    else:
        (mean_b, sd_b), (mean_o, sd_o) = _mean_std([math.log(v) for v in base.values()]), _mean_std(
            [math.log(v) for v in other.values()]
        )
        mean = mean_b - mean_o
        if sd_b is None or sd_o is None:
            return math.exp(mean), None, None, "one seed"
        var_b, var_o = sd_b**2 / len(base), sd_o**2 / len(other)
        se = math.sqrt(var_b + var_o)
        if se == 0:
            half = 0.0
        else:  # Welch-Satterthwaite degrees of freedom
            df = se**4 / (var_b**2 / (len(base) - 1) + var_o**2 / (len(other) - 1))
            half = stats.t.ppf(quantile, df) * se
        how = "unpaired"
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half), how


def _number(x):
    return "—" if x is None else f"{x:.4g}"


def _cell_mean(values):
    if not values or any(v is None for v in values):
        return "—"
    mean, std = _mean_std(values)
    return _number(mean) if std is None else f"{_number(mean)} ± {_number(std)}"


def _cell_ratio(ratio, low, high, how):
    if ratio is None:
        return "—"
    if low is None:
        return f"{_number(ratio)} (one seed)"
    return f"{_number(ratio)} [{_number(low)}, {_number(high)}] {how}"


def ratio_table(rows, baseline=None):
    """Markdown: for each objective, a table of each measure's mean ± std per model and the
    ratios baseline ÷ each other model with 95% intervals.

    Args:
        rows (list of dict): from :func:`read_measurements`.
        baseline (str, optional): the label every other model is divided into; default
            ``SASRec`` if there is one, else the first label read.

    Returns:
        str: the Markdown text.

    Raises:
        ConfigError: no measurements, an unknown baseline, two measurements of one model on
        the same seeds, or inputs of one objective measured with different settings.
    """
    if not rows:
        raise ConfigError("inputs: no measurements")
    labels = list(dict.fromkeys(row["label"] for row in rows))
    if baseline is None:
        baseline = "SASRec" if "SASRec" in labels else labels[0]
    if baseline not in labels:
        raise ConfigError(f"baseline: {baseline!r} is not one of the labels read ({', '.join(labels)})")
    sections = []
    for objective in dict.fromkeys(row["objective"] for row in rows):
        mine = [row for row in rows if row["objective"] == objective]
        settings = {json.dumps(row["settings"], sort_keys=True): row["path"] for row in mine}
        if len(settings) > 1:
            raise ConfigError(
                f"inputs: objective {objective} was measured with different settings in {', '.join(settings.values())}"
            )
        by_label = defaultdict(dict)
        for row in mine:
            if row["replicate"] in by_label[row["label"]]:
                raise ConfigError(
                    f"inputs: {row['label']} is measured twice on training seed {row['replicate'][0]} "
                    f"and measurement seed {row['replicate'][1]} ({row['path']})"
                )
            by_label[row["label"]][row["replicate"]] = row["values"]
        sections.append(_section(objective, mine[0]["settings"], by_label, baseline))
    return "\n".join(sections)


def _section(objective, settings, by_label, baseline):
    models = list(by_label)
    others = [m for m in models if m != baseline] if baseline in by_label else []
    header = ["measure"] + [f"{m} (n={len(by_label[m])})" for m in models] + [f"{baseline} ÷ {m}, 95% CI" for m in others]
    lines = [
        f"### Objective: {objective}",
        "",
        "Settings: " + ", ".join(f"{key} {value}" for key, value in sorted(settings.items())) + ".",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for key, name in MEASURES:
        columns = {m: {rep: values[key] for rep, values in by_label[m].items()} for m in models}
        if all(v is None for m in models for v in columns[m].values()):
            continue  # not measured (an older output)
        cells = [_cell_mean(list(columns[m].values())) for m in models]
        cells += [_cell_ratio(*ratio_interval(columns[baseline], columns[m])) for m in others]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Mean ± sample std over seeds (n per model). Ratio: the geometric mean of "
        f"{baseline} ÷ model; 95% CI: t-interval on the log-ratios, paired by (training seed, measurement seed) "
        "where both models have the same seeds, else Welch's t on the logs (unpaired).",
        "",
    ]
    return "\n".join(lines)
