"""Tables of the verdict grid (benchmarks/verdict.py): rho selection, and the paired comparison.

    python benchmarks/verdict_report.py --out runs/verdict --dataset ml-100k

Selection (seed 1): every arm's best validation score, best and stopping epoch, and whether it
hit the epoch cap; rho* is the SAM run with the best validation score. Verdict (the other
seeds): test metrics as mean ± sample std, and the paired difference SAM - plain per seed with
a 95% t-interval. Only seeds where both arms finished are paired.
"""

import argparse
import json
import statistics
from pathlib import Path

from scipy import stats

METRICS = ("hit@10", "ndcg@10")
SELECTION_SEED = 1


def load(folder):
    records = [json.loads(path.read_text()) for path in sorted(Path(folder).glob("runs/*.json"))]
    return [record for record in records if record.get("history")]


def rho_of(record):
    return record["settings"].get("rho")


def selection_table(records, valid_key, rhos):
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


def mean_std(values):
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"


def paired(plain, sam):
    """Mean paired difference, its 95% t-interval, and the relative change of the means."""
    diffs = [s - p for p, s in zip(plain, sam)]
    mean = statistics.mean(diffs)
    if len(diffs) > 1:
        half = stats.t.ppf(0.975, len(diffs) - 1) * statistics.stdev(diffs) / len(diffs) ** 0.5
        interval = f"[{mean - half:+.4f}, {mean + half:+.4f}]"
    else:
        interval = "(one pair: no interval)"
    return f"{mean:+.4f} {interval}", 100 * mean / statistics.mean(plain)


def paired_runs(records, rho):
    """``[(seed, plain_record, sam_record)]`` for the verdict seeds where both arms finished."""
    by_seed = {}
    for r in records:
        seed = r["settings"]["seed"]
        arm = "plain" if r["settings"]["trainer"] == "plain" else ("sam" if rho_of(r) == rho else None)
        if seed != SELECTION_SEED and arm:
            by_seed.setdefault(seed, {})[arm] = r
    return [(s, arms["plain"], arms["sam"]) for s, arms in sorted(by_seed.items()) if len(arms) == 2]


def verdict_table(records, rho):
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
            lines.append(f"| {label} | {mean_std(plain)} | {mean_std(sam)} | {diff} | {relative:+.1f}% |")
    return "\n".join(lines), len(pairs)


def plot(out, dataset, backbones, valid_key, rhos, path):
    """One row per backbone: validation (and test) NDCG against rho for seed 1, plain dashed;
    and the paired differences SAM - plain with their 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(backbones), 2, figsize=(10, 3.4 * len(backbones)), squeeze=False)
    for row, backbone in enumerate(backbones):
        records = load(Path(out) / dataset / backbone)
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
        ax.set_title(f"{dataset}, {backbone} SASRec: selection (seed {SELECTION_SEED})")
        ax.legend(fontsize=7)
        ax = axes[row][1]
        _, rho = selection_table(records, valid_key, rhos)
        labels, means, halves = [], [], []
        for key in ("hit@10", "ndcg@10", "unmasked_hit@10", "unmasked_ndcg@10"):
            diffs = _paired_diffs(records, rho, key) if rho is not None else []
            if len(diffs) > 1:
                labels.append(key)
                means.append(statistics.mean(diffs))
                halves.append(stats.t.ppf(0.975, len(diffs) - 1) * statistics.stdev(diffs) / len(diffs) ** 0.5)
        if labels:
            ax.errorbar(range(len(labels)), means, yerr=halves, fmt="o", capsize=4)
            ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.axhline(0, color="grey", linewidth=0.8)
        n = len(_paired_diffs(records, rho, "hit@10")) if rho is not None else 0
        ax.set_title(f"test, SAM (rho={rho}) - plain: mean, 95% CI (n={n} pairs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _paired_diffs(records, rho, key):
    pairs = paired_runs(records, rho)
    return [s["test_result"][key] - p["test_result"][key] for _, p, s in pairs if key in p["test_result"] and key in s["test_result"]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/verdict")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--backbones", nargs="+", default=["BCE", "CE"])
    parser.add_argument("--valid-metric", default="ndcg@20")
    parser.add_argument("--rhos", nargs="+", type=float, default=[0.01, 0.03, 0.1, 0.3, 1.0])
    parser.add_argument("--plot", help="also draw the selection and the paired differences into this PNG")
    args = parser.parse_args()
    for backbone in args.backbones:
        records = load(Path(args.out) / args.dataset / backbone)
        if not records:
            continue
        table, rho = selection_table(records, args.valid_metric, args.rhos)
        print(f"### {args.dataset}, {backbone} SASRec: rho selection (seed {SELECTION_SEED})\n\n{table}\n")
        if rho is None:
            continue
        verdict, _ = verdict_table(records, rho)
        print(f"### {args.dataset}, {backbone} SASRec: plain vs SAM at rho* = {rho}\n\n{verdict}\n")
    if args.plot:
        backbones = [b for b in args.backbones if load(Path(args.out) / args.dataset / b)]
        plot(args.out, args.dataset, backbones, args.valid_metric, args.rhos, args.plot)


if __name__ == "__main__":
    main()
