"""Pictures of the sweeps: metrics against rho (the paper's Figure 3) and against the fraction
of training data (Figure 2). They draw what ``report.summarize`` computed: means, with the
std over seeds as error bars. Built with matplotlib's object API on the Agg canvas: no
window, and no change to the process's pyplot backend.
"""

from matplotlib.figure import Figure

from recbole_sam.errors import ConfigError
from recbole_sam.experiments.report import METRIC_NAMES, METRICS

PANEL_INCHES = (4.5, 3.5)
LEGEND_INCHES = 2.0


def _errors(groups, metric):
    return [group["std"][metric] or 0.0 for group in groups]  # one seed: no bar


def _is_plain_sasrec(group, dataset):
    return (group["dataset"], group["model"], group["trainer"], group["overrides"]) == (dataset, "SASRec", "plain", {})


def plot_rho(groups, path, metrics=METRICS, dpi=100):
    """Each metric against rho (log axis), one line per dataset, with the plain SASRec of that
    dataset as a dashed line of the same colour.

    Args:
        groups (list of dict): from ``report.summarize``; SAMRec groups with a ``rho``, and plain SASRec.
        path (str): the PNG to write.
        metrics (tuple of str): one panel each.
        dpi (int): resolution.

    Raises:
        ConfigError: no SAMRec group with a rho.
    """
    swept = [g for g in groups if g["model"] == "SASRec" and g["trainer"] == "sam" and "rho" in g["overrides"]]
    if not swept:
        raise ConfigError("plot: no SAMRec runs with a rho to draw")
    datasets = list(dict.fromkeys(group["dataset"] for group in swept))
    rhos = sorted({group["overrides"]["rho"] for group in swept})
    size = (PANEL_INCHES[0] * len(metrics) + LEGEND_INCHES, PANEL_INCHES[1])
    fig = Figure(figsize=size, dpi=dpi, layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for index, dataset in enumerate(datasets):
            color = f"C{index}"
            line = sorted((g for g in swept if g["dataset"] == dataset), key=lambda g: g["overrides"]["rho"])
            x = [group["overrides"]["rho"] for group in line]
            y = [group["mean"][metric] for group in line]
            label = f"SAMRec, {dataset}"
            ax.errorbar(x, y, yerr=_errors(line, metric), color=color, marker="o", capsize=3, label=label)
            for base in groups:
                if _is_plain_sasrec(base, dataset):
                    ax.axhline(base["mean"][metric], color=color, linestyle="--", label=f"SASRec, {dataset}")
        ax.set_xscale("log")
        ax.set_xticks(rhos, [f"{rho:g}" for rho in rhos])
        ax.set_xlabel("ρ")
        ax.set_ylabel(METRIC_NAMES.get(metric, metric))
        ax.grid(True, alpha=0.3)
    axes[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))  # beside the panels, off the data
    fig.suptitle("SAMRec against ρ (mean ± std over seeds; dashed: SASRec)", fontsize=10)
    fig.savefig(path, format="png")


def plot_sparsity(groups, path, metrics=METRICS, dpi=100):
    """Each metric against the percentage of training data kept, one line per model, one
    column of panels per dataset.

    Args:
        groups (list of dict): from ``report.summarize``; groups with a ``train_fraction``.
        path (str): the PNG to write.
        metrics (tuple of str): one row of panels each.
        dpi (int): resolution.

    Raises:
        ConfigError: no group with a train_fraction.
    """
    swept = [group for group in groups if "train_fraction" in group["overrides"]]
    if not swept:
        raise ConfigError("plot: no runs with a train_fraction to draw")
    datasets = list(dict.fromkeys(group["dataset"] for group in swept))
    names = list(dict.fromkeys(group["name"] for group in swept))
    size = (PANEL_INCHES[0] * len(datasets) + LEGEND_INCHES, PANEL_INCHES[1] * len(metrics))
    fig = Figure(figsize=size, dpi=dpi, layout="constrained")
    axes = fig.subplots(len(metrics), len(datasets), squeeze=False)
    for row, metric in enumerate(metrics):
        for col, dataset in enumerate(datasets):
            ax = axes[row][col]
            for index, name in enumerate(names):
                line = [g for g in swept if g["dataset"] == dataset and g["name"] == name]
                line.sort(key=lambda g: g["overrides"]["train_fraction"])
                x = [100 * group["overrides"]["train_fraction"] for group in line]
                y = [group["mean"][metric] for group in line]
                ax.errorbar(x, y, yerr=_errors(line, metric), color=f"C{index}", marker="o", capsize=3, label=name)
            ax.set_xticks(sorted({100 * g["overrides"]["train_fraction"] for g in swept}))
            ax.set_title(dataset, fontsize=10)
            ax.set_xlabel("training data kept (%)")
            ax.set_ylabel(METRIC_NAMES.get(metric, metric))
            ax.grid(True, alpha=0.3)
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.suptitle("Sparsity (mean ± std over seeds)", fontsize=10)
    fig.savefig(path, format="png")
