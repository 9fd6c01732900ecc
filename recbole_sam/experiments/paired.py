"""The verdict's and the ablation's statistics and tables: runs paired by seed (same seed: same
initial weights and batch order), the paired difference SAM - plain with its 95% t-interval.

Selection (seed 1): every arm's best validation score, best and stopping epoch, and whether it
hit the epoch cap; rho* is the SAM run with the best validation score (the test set plays no
part). Verdict (the other seeds): test metrics as mean ± sample std, and the paired difference
per seed. Only seeds where both arms finished are paired. Pure functions on run records
(``recbole_sam.run``); ``plot`` alone needs matplotlib.
"""

import statistics

from recbole_sam.experiments.report import format_mean_std, mean_std

METRICS = ("hit@10", "ndcg@10")
SELECTION_SEED = 1
# The ablation's rows: each correction alone, none, and all together (see verdict.ABLATIONS).
ABLATION_ROWS = ("none", "left", "from_prediction", "zero_padding", "mask_padding_positions", "neg_user", "all")
CAP_NOTE = (
    "cap hit: the run trained for all its epochs without early stopping, so its best epoch may "
    "lie beyond the cap."
)


def with_history(records):
    """The records that hold a run history (the verdict's; older grids' records do not)."""
    return [record for record in records if record.get("history")]


# What a SAM arm's selection grid varies: its radius rho, or for sam_variant saf (no ascent,
# so no radius) the weight of its trajectory loss.
GRID_KEYS = ("rho", "saf_weight")


def rho_of(record):
    """The SAM arm's grid value (``rho``, or ``saf_weight`` for SAF); None for plain runs."""
    own = record["settings"]
    return next((own[key] for key in GRID_KEYS if key in own), None)


def paired_interval(plain, sam, level=0.95):
    """The mean paired difference ``sam - plain`` and the half width of its t-interval.

    Args:
        plain (list of float): one value per seed.
        sam (list of float): the same seeds' values, in the same order.
        level (float): the interval's confidence.

    Returns:
        tuple: ``(mean, half_width)``; ``half_width`` is None for a single pair.
    """
    from scipy import stats

    diffs = [s - p for p, s in zip(plain, sam)]
    mean = statistics.mean(diffs)
    if len(diffs) < 2:
        return mean, None
    return mean, stats.t.ppf(0.5 + level / 2, len(diffs) - 1) * statistics.stdev(diffs) / len(diffs) ** 0.5


def paired(plain, sam):
    """``"+0.0200 [-0.0048, +0.0448]"`` (mean paired difference, 95% interval) and the relative
    change of the means, in percent."""
    mean, half = paired_interval(plain, sam)
    interval = "(one pair: no interval)" if half is None else f"[{mean - half:+.4f}, {mean + half:+.4f}]"
    return f"{mean:+.4f} {interval}", 100 * mean / statistics.mean(plain)


def selection_table(records, valid_key, rhos):
    """The selection seed's runs, and rho* (None while a SAM run of ``rhos`` is missing).

    Returns:
        tuple: ``(markdown, rho_star)``.
    """
    rows = [r for r in records if r["settings"]["seed"] == SELECTION_SEED]
    rows.sort(key=lambda r: (r["settings"]["trainer"] != "plain", rho_of(r) or 0))
    sam = [r for r in rows if r["settings"]["trainer"] == "sam"]
    complete = {rho_of(r) for r in sam} >= set(rhos)
    best = max(sam, key=lambda r: r["best_valid_result"][valid_key]) if sam and complete else None
    lines = [
        f"| arm | rho | valid {valid_key} | best epoch | stopped | cap hit | test HR@10 | test NDCG@10 | unmasked test NDCG@10 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        h, t = r["history"], r["test_result"]
        mark = " (rho*)" if r is best else ""
        lines.append(
            f"| {r['settings']['trainer']}{mark} | {rho_of(r) or '–'} | {r['best_valid_result'][valid_key]:.4f} | "
            f"{h['best_epoch']} | {h['stopping_epoch']} | {'yes' if h['hit_cap'] else 'no'} | {t['hit@10']:.4f} | "
            f"{t['ndcg@10']:.4f} | {t.get('unmasked_ndcg@10', float('nan')):.4f} |"
        )
    if not complete:
        lines.append(f"\nSelection incomplete: {len(sam)} of {len(rhos)} SAM runs finished; no rho* yet.")
    return "\n".join(lines), (rho_of(best) if best else None)


def choose_rho(records, valid_key, rhos):
    """rho*: the selection seed's SAM run with the best validation score; None while one is missing."""
    return selection_table(records, valid_key, rhos)[1]


def paired_runs(records, rho):
    """``[(seed, plain_record, sam_record)]`` for the verdict seeds where both arms finished."""
    by_seed = {}
    for r in records:
        seed = r["settings"]["seed"]
        arm = "plain" if r["settings"]["trainer"] == "plain" else ("sam" if rho_of(r) == rho else None)
        if seed != SELECTION_SEED and arm:
            by_seed.setdefault(seed, {})[arm] = r
    return [(s, arms["plain"], arms["sam"]) for s, arms in sorted(by_seed.items()) if len(arms) == 2]


def _mean_std_text(values):
    return format_mean_std(*mean_std(values))


def verdict_table(records, rho):
    """Plain against SAM at ``rho`` on the paired seeds.

    Returns:
        tuple: ``(markdown, pairs)``.
    """
    pairs = paired_runs(records, rho)
    if not pairs:
        return "No finished pair yet.", 0
    lines = [
        f"Seeds {', '.join(str(s) for s, _, _ in pairs)} (n = {len(pairs)} pairs); "
        f"runs that hit the epoch cap: {sum(r['history']['hit_cap'] for _, p, s in pairs for r in (p, s))}.",
        "",
        "| metric | plain | SAM (rho = %s) | SAM - plain, mean [95%% CI] | relative |" % rho,
        "|---|---|---|---|---|",
    ]
    for prefix in ("", "unmasked_"):
        for metric in METRICS:
            key = prefix + metric
            if key not in pairs[0][1]["test_result"]:
                continue
            plain = [p["test_result"][key] for _, p, _ in pairs]
            sam = [s["test_result"][key] for _, _, s in pairs]
            diff, relative = paired(plain, sam)
            label = ("unmasked " if prefix else "") + f"test {metric.upper().replace('HIT', 'HR')}"
            lines.append(f"| {label} | {_mean_std_text(plain)} | {_mean_std_text(sam)} | {diff} | {relative:+.1f}% |")
    return "\n".join(lines), len(pairs)


def verdict_report(records_by_backbone, dataset, valid_key, rhos):
    """The Markdown of ``benchmarks/verdict_report.py``: per backbone, the selection and, once
    rho* is known, the paired verdict.

    Args:
        records_by_backbone (dict): ``{backbone: records}``, in the report's order.
        dataset (str): the dataset's name, for the headings.
        valid_key (str): the validation metric rho* is chosen by, e.g. ``ndcg@20``.
        rhos (list of float): the selection's radii.

    Returns:
        str: the report.
    """
    parts = []
    for backbone, records in records_by_backbone.items():
        records = with_history(records)
        if not records:
            continue
        table, rho = selection_table(records, valid_key, rhos)
        name = f"{dataset}, {backbone} {model_of(records)}"
        parts.append(f"### {name}: rho selection (seed {SELECTION_SEED})\n\n{table}\n")
        if rho is None:
            continue
        verdict, _ = verdict_table(records, rho)
        parts.append(f"### {name}: plain vs SAM at rho* = {rho}\n\n{verdict}\n")
    if parts:
        parts.append(CAP_NOTE + "\n")
    return "\n".join(parts)


def model_of(records):
    """The model name of a grid's records (``SASRec`` for records that do not say)."""
    return records[0]["settings"].get("model", "SASRec") if records else "SASRec"


def seed_pairs(records):
    """``{seed: {"plain": record, "sam": record}}`` for the seeds where both arms finished."""
    by_seed = {}
    for record in with_history(records):
        by_seed.setdefault(record["settings"]["seed"], {})[record["settings"]["trainer"]] = record
    return {seed: arms for seed, arms in sorted(by_seed.items()) if len(arms) == 2}


def ablation_table(records_by_row):
    """One row per correction: each cell the mean over the seeds where both arms of that row
    finished (n in the table), and ``SAM - plain`` the mean paired difference of test HR@10
    with its 95% t-interval.

    Args:
        records_by_row (dict): ``{correction: records}``.

    Returns:
        str: the Markdown table.
    """
    lines = [
        "| correction | seeds | plain HR@10 | SAM HR@10 | SAM − plain HR@10 [95% CI] | plain NDCG@10 | SAM NDCG@10 "
        "| plain unmasked NDCG@10 | SAM unmasked NDCG@10 | best epochs (plain, SAM) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ABLATION_ROWS:
        runs = seed_pairs(records_by_row.get(name, []))
        if not runs:
            continue

        def mean(arm, key):
            return statistics.mean(arms[arm]["test_result"].get(key, float("nan")) for arms in runs.values())

        plain_hit = [arms["plain"]["test_result"]["hit@10"] for arms in runs.values()]
        sam_hit = [arms["sam"]["test_result"]["hit@10"] for arms in runs.values()]
        difference, relative = paired(plain_hit, sam_hit)
        epochs = "; ".join(
            f"{arms['plain']['history']['best_epoch']}, {arms['sam']['history']['best_epoch']}" for arms in runs.values()
        )
        lines.append(
            f"| {name} | {', '.join(map(str, runs))} | {mean('plain', 'hit@10'):.4f} | {mean('sam', 'hit@10'):.4f} | "
            f"{difference} ({relative:+.1f}%) | {mean('plain', 'ndcg@10'):.4f} | {mean('sam', 'ndcg@10'):.4f} | "
            f"{mean('plain', 'unmasked_ndcg@10'):.4f} | {mean('sam', 'unmasked_ndcg@10'):.4f} | {epochs} |"
        )
    return "\n".join(lines)


def _paired_diffs(records, rho, key):
    pairs = paired_runs(records, rho)
    return [s["test_result"][key] - p["test_result"][key] for _, p, s in pairs if key in p["test_result"] and key in s["test_result"]]


def plot(records_by_backbone, dataset, valid_key, rhos, path):
    """One row per backbone: validation (and test) NDCG against rho for seed 1, plain dashed;
    and the paired differences SAM - plain with their 95% intervals."""
    from matplotlib.figure import Figure

    backbones = [b for b, records in records_by_backbone.items() if with_history(records)]
    fig = Figure(figsize=(10, 3.4 * len(backbones)))
    axes = fig.subplots(len(backbones), 2, squeeze=False)
    for row, backbone in enumerate(backbones):
        records = with_history(records_by_backbone[backbone])
        selection = [r for r in records if r["settings"]["seed"] == SELECTION_SEED]
        sam = sorted((r for r in selection if r["settings"]["trainer"] == "sam"), key=rho_of)
        plain = [r for r in selection if r["settings"]["trainer"] == "plain"]
        ax = axes[row][0]
        for key, label, style in ((valid_key, f"valid {valid_key}", "o-"), ("ndcg@10", "test ndcg@10", "s-")):
            source = "best_valid_result" if key == valid_key else "test_result"
            ax.plot([rho_of(r) for r in sam], [r[source][key] for r in sam], style, label=f"SAM, {label}")
            if plain:
                ax.axhline(plain[0][source][key], linestyle="--", color=ax.lines[-1].get_color(), label=f"plain, {label}")
        if sam:
            ax.set_xscale("log")
        ax.set_xlabel("rho")
        ax.set_title(f"{dataset}, {backbone} {model_of(records)}: selection (seed {SELECTION_SEED})")
        ax.legend(fontsize=7)
        ax = axes[row][1]
        rho = choose_rho(records, valid_key, rhos)
        labels, means, halves = [], [], []
        for key in ("hit@10", "ndcg@10", "unmasked_hit@10", "unmasked_ndcg@10"):
            diffs = _paired_diffs(records, rho, key) if rho is not None else []
            if len(diffs) > 1:
                mean, half = paired_interval([0.0] * len(diffs), diffs)
                labels.append(key)
                means.append(mean)
                halves.append(half)
        if labels:
            ax.errorbar(range(len(labels)), means, yerr=halves, fmt="o", capsize=4)
            ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.axhline(0, color="grey", linewidth=0.8)
        n = len(_paired_diffs(records, rho, "hit@10")) if rho is not None else 0
        ax.set_title(f"test, SAM (rho={rho}) - plain: mean, 95% CI (n={n} pairs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
