"""The table of the corrections' ablation (benchmarks/ablation.sh): one row per correction.

    python benchmarks/ablation_report.py --out runs/ablation --dataset ml-100k

Each cell is the mean over the seeds where both arms of that row finished (n in the table), so
plain and SAM are paired within a row; ``SAM - plain`` is the mean paired difference of test
HR@10 with its 95% t-interval.
"""

import argparse
import statistics
from pathlib import Path

from verdict_report import load, paired

ROWS = ("none", "left", "from_prediction", "zero_padding", "mask_padding_positions", "neg_user", "all")


def pairs(folder):
    """``{seed: {"plain": record, "sam": record}}`` for the seeds where both arms finished."""
    by_seed = {}
    for record in load(folder):  # records with a history only
        by_seed.setdefault(record["settings"]["seed"], {})[record["settings"]["trainer"]] = record
    return {seed: arms for seed, arms in sorted(by_seed.items()) if len(arms) == 2}


def table(out):
    lines = [
        "| correction | seeds | plain HR@10 | SAM HR@10 | SAM − plain HR@10 [95% CI] | plain NDCG@10 | SAM NDCG@10 "
        "| plain unmasked NDCG@10 | SAM unmasked NDCG@10 | best epochs (plain, SAM) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ROWS:
        runs = pairs(Path(out) / name)
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/ablation")
    parser.add_argument("--dataset", default="ml-100k")
    args = parser.parse_args(argv)
    print(table(Path(args.out) / args.dataset))


if __name__ == "__main__":
    main()
