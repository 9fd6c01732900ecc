#!/usr/bin/env bash
# The padding/position/negative corrections of issue 9, each alone and all together, on top of
# the paper setting (properties/paper/<dataset>.yaml), plain and SAM, one seed; every run reports
# masked and unmasked metrics. One run_experiments.py grid (resumable) per correction:
#   bash benchmarks/ablation.sh ml-100k 0.03 2 "none left"     # dataset, rho, seed, corrections
set -euo pipefail
dataset=${1:-ml-100k}; rho=${2:-0.03}; seed=${3:-2}
names=${4:-"none left from_prediction zero_padding mask_padding_positions neg_user all"}
base="padding_side=right position_from_prediction=False zero_padding=False mask_padding_positions=False neg_exclude=input"
for name in $names; do
    case $name in
        none) extra="" ;;
        left) extra="padding_side=left" ;;
        from_prediction) extra="position_from_prediction=True" ;;
        zero_padding) extra="zero_padding=True" ;;
        mask_padding_positions) extra="mask_padding_positions=True" ;;
        neg_user) extra="neg_exclude=user" ;;
        all) extra="padding_side=left zero_padding=True mask_padding_positions=True neg_exclude=user" ;;
        *) echo "unknown correction: $name" >&2; exit 2 ;;
    esac
    declare -A settings=()
    for item in $base $extra; do settings[${item%%=*}]=${item#*=}; done
    sets=(--set "rho=$rho")
    for key in "${!settings[@]}"; do sets+=(--set "$key=${settings[$key]}"); done
    python run_experiments.py table --models SASRec --trainers plain sam --datasets "$dataset" --seeds "$seed" \
        --config-files "properties/paper/$dataset.yaml" "${sets[@]}" --threads 1 --no-progress \
        --out "runs/ablation/$dataset/$name"
    unset settings
done
