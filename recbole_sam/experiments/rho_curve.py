"""Figure 3 with intervals: SAM - plain at every rho, paired by seed, from run records.

The paper plots one number per rho and calls SAMRec "stable for rho in [0.1, 1]"; here each
rho gets the mean paired difference of test HR@10 and NDCG@10 over the seeds (seed 1, which
chooses rho*, is left out) and its 95% t-interval.
"""

from pathlib import Path

from recbole_sam.atomic import write_atomically
from recbole_sam.experiments.claims import minus
from recbole_sam.experiments.paired import SELECTION_SEED, paired_interval, paired_runs, rho_of, with_history
from recbole_sam.run import load_records

METRICS = ("hit@10", "ndcg@10")
PAPER_RANGE = (0.1, 1.0)


def rho_curve(records, metrics=METRICS):
    """``[{"rho", "pairs", "cap", metric: (mean, low, high) or None}]``, one per rho, sorted."""
    sam = [r for r in records if r["settings"]["trainer"] == "sam"]
    rhos = sorted({rho_of(r) for r in sam if r["settings"]["seed"] != SELECTION_SEED})
    curve = []
    for rho in rhos:
        matched = paired_runs(records, rho)
        point = {"rho": rho, "pairs": len(matched), "cap": sum(r["history"]["hit_cap"] for _, *pair in matched for r in pair)}
        for metric in metrics:
            plain, with_sam = ([r[k]["test_result"][metric] for r in matched] for k in (1, 2))
            mean, half = paired_interval(plain, with_sam) if matched else (None, None)
            point[metric] = None if half is None else (mean, mean - half, mean + half)
        curve.append(point)
    return curve


def curve_markdown(curve, metrics=METRICS):
    """str: one row per rho: pairs, runs that hit the cap, each metric's difference [95% CI]."""
    names = [metric.upper().replace("HIT", "HR") for metric in metrics]
    lines = ["| rho | pairs (cap hit) | " + " | ".join(f"SAM − plain, test {n} [95% CI]" for n in names) + " |"]
    lines.append("|---|---|" + "---|" * len(metrics))
    for point in curve:
        cells = ["–" if point[m] is None else minus("{:+.4f} [{:+.4f}, {:+.4f}]".format(*point[m])) for m in metrics]
        lines.append(f"| {point['rho']:g} | {point['pairs']} ({point['cap']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_rho_curves(curves, path, metrics=METRICS):
    """One panel per metric: each curve's mean paired difference against rho (log axis) with
    its 95% interval, zero marked, the paper's "stable" range shaded.

    Args:
        curves (dict): label -> ``rho_curve(...)``.
        path (str): the PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        ax.axvspan(*PAPER_RANGE, color="tab:green", alpha=0.12, label="the paper's stable range")
        ax.axhline(0, color="grey", linewidth=0.8)
        for offset, (label, curve) in zip((0.96, 1.04, 1.0), curves.items()):
            points = [p for p in curve if p[metric] is not None]
            rhos = [p["rho"] * offset for p in points]  # side by side, not on top of each other
            means = [p[metric][0] for p in points]
            errors = [[p[metric][0] - p[metric][1] for p in points], [p[metric][2] - p[metric][0] for p in points]]
            n = sorted({p["pairs"] for p in points})
            ax.errorbar(rhos, means, yerr=errors, fmt="o-", capsize=3, label=f"{label} (n={'/'.join(map(str, n))} pairs)")
        ax.set_xscale("log")
        ax.set_xlabel("rho")
        ax.set_ylabel(f"SAM − plain, test {metric.upper().replace('HIT', 'HR')}")
        ax.legend(fontsize=7)
    fig.suptitle("SAM − plain SASRec against rho: mean paired difference, 95% interval")
    fig.tight_layout()
    write_atomically(path, lambda partial: fig.savefig(partial, dpi=110))
    plt.close(fig)


def load_curve(folder):
    """``rho_curve`` of the records in ``folder`` (a grid's: ``folder/runs/*.json``)."""
    return rho_curve(with_history(load_records(Path(folder) / "runs")))
