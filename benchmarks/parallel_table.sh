#!/usr/bin/env bash
# Run `run_experiments.py table` for several seeds and trainers at once, one process each, for
# machines with many cores (or a GPU) to spare. Each process writes its own run JSONs under
# OUT/<trainer>-<seed>; merge them with:  mkdir -p OUT/all/runs && cp OUT/*/runs/*.json OUT/all/runs/
# and rerun the same table command with --out OUT/all (finished runs are skipped, the report is written).
#   usage: bash benchmarks/parallel_table.sh OUT DATASET "SEEDS" "TRAINERS" [run_experiments.py table options...]
set -u
out=$1 dataset=$2 seeds=$3 trainers=$4
shift 4
mkdir -p "$out"
for seed in $seeds; do
  for trainer in $trainers; do
    python3 run_experiments.py table --models SASRec --datasets "$dataset" --seeds "$seed" \
      --trainers "$trainer" --out "$out/$trainer-$seed" --no-progress "$@" \
      > "$out/$trainer-$seed.log" 2>&1 &
  done
done
wait
