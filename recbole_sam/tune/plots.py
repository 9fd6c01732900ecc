"""Pictures of a search: the validation metric against the epoch for every trial, and each
trial's best validation metric against each searched number (rho, learning rate, ...).
matplotlib's object API on the Agg canvas: no window, no change to pyplot's backend.
"""

from matplotlib.figure import Figure

PANEL_INCHES = (4.5, 3.5)


def plot_curves(trials, metric_label, path, dpi=100):
    """The validation score after every validation, one line per trial; the best trial thick.

    Args:
        trials (list of dict): from ``results.collect``; ``history`` holds each report.
        metric_label (str): the y axis, e.g. ``ndcg@10 (valid)``.
        path (str): the PNG to write.
        dpi (int): resolution.
    """
    fig = Figure(figsize=(6.5, 4), dpi=dpi, layout="constrained")
    ax = fig.subplots()
    for index, trial in enumerate(trials):
        history = [entry for entry in trial["history"] if entry.get("valid_score") is not None]
        x = [entry["epoch"] for entry in history]
        y = [entry["valid_score"] for entry in history]
        ax.plot(x, y, marker="o", markersize=3, linewidth=1, color=f"C{index % 10}", label=str(trial["trial_id"]))
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric_label)
    ax.grid(True, alpha=0.3)
    if len(trials) <= 12:
        ax.legend(fontsize=7, loc="best")
    fig.suptitle("Validation metric of every trial", fontsize=10)
    fig.savefig(path, format="png")


def numeric_params(rows, params):
    """list of Param: the hyperparameters with a number in every scored row (what ``plot_params`` can draw)."""
    scored = [row for row in rows if row.get("best_valid_score") is not None]

    def is_number(value):
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    return [p for p in params if scored and all(is_number(row.get(p.name)) for row in scored)]


def plot_params(rows, numeric, path, dpi=100):
    """Each trial's best validation score against each numeric hyperparameter (log axis for
    loguniform ones), one panel per hyperparameter.

    Args:
        rows (list of dict): the trials table (``results.table_rows``).
        numeric (list of Param): from ``numeric_params``.
        path (str): the PNG to write.
        dpi (int): resolution.
    """
    params_figure(rows, numeric, dpi).savefig(path, format="png")


def params_figure(rows, numeric, dpi=100):
    """The ``Figure`` that ``plot_params`` writes."""
    scored = [row for row in rows if row.get("best_valid_score") is not None]
    fig = Figure(figsize=(PANEL_INCHES[0] * len(numeric), PANEL_INCHES[1]), dpi=dpi, layout="constrained")
    axes = fig.subplots(1, len(numeric), squeeze=False)[0]
    for ax, param in zip(axes, numeric):
        ax.scatter([row[param.name] for row in scored], [row["best_valid_score"] for row in scored], s=18)
        if param.kind == "loguniform":
            _log_ticks(ax, [row[param.name] for row in scored])
        ax.set_xlabel(param.name)
        ax.set_ylabel("best validation score")
        ax.grid(True, alpha=0.3)
    fig.suptitle("Best validation score of each trial", fontsize=10)
    return fig


def _log_ticks(ax, values):
    # Over a decade or two, matplotlib's log axis labels its minor ticks too (2x10^-4, 3x10^-4, ...),
    # and they run into each other: label only 1, 2 and 5 a decade, as plain numbers; within
    # less than a decade, a few evenly spaced numbers.
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    ax.set_xscale("log")
    positive = [value for value in values if value > 0]
    narrow = positive and max(positive) < 10 * min(positive)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4) if narrow else LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=5))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="x", labelsize=8, labelrotation=30)
