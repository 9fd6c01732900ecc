#!/usr/bin/env bash
# The padding/position/negative corrections of issue 9, each alone and all together, on top of
# the paper setting, plain and SAM, at one rho: `python run_experiments.py ablation` (the arms are
# recbole_sam/experiments/verdict.py's ABLATIONS). Same arguments as before:
#   bash benchmarks/ablation.sh ml-100k 0.03 2 "none left"     # dataset, rho, seed, corrections
set -euo pipefail
dataset=${1:-ml-100k}; rho=${2:-0.03}; seed=${3:-2}
names=${4:-"none left from_prediction zero_padding mask_padding_positions neg_user all"}
# shellcheck disable=SC2086
exec python run_experiments.py ablation --dataset "$dataset" --rho "$rho" --seeds "$seed" --corrections $names \
    --threads 1 --out runs/ablation
