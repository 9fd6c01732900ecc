#!/usr/bin/env bash
# The verdict grid on a lent GPU machine (see docs/results.md), in calls of at most 10 minutes.
#
#   bash benchmarks/gpu_verdict.sh SECONDS
#
# The first call installs the carried wheels (.whl/, see docs/recbole_fixes.md) and starts the
# grids as their own process sessions, so that they outlive the call while the machine stays
# warm; every call (the first and any next one on the same warm machine) then waits SECONDS and
# copies the finished records and the logs to $OUT/records.tar.gz, every 20 s.
#
# What runs (the Beauty data must be carried: dataset/Beauty):
#   - Beauty, CE backbone: the whole grid, 8 GPU processes;
#   - Beauty, BCE backbone: the rho selection only (seed 1), 4 GPU processes; its paired seeds
#     run on CPUs, where the plain arm runs too, so that each pair shares its device;
#   - ml-100k, both backbones, seeds 6-10, on 3 of the machine's CPU cores (no GPU). (Their
#     records of 2026-11-26 exist, so this trains nothing now; they most likely ran on the GPU,
#     as RecBole set CUDA_VISIBLE_DEVICES back to 0 before SAMConfig kept the variable.)
set -u
seconds=${1:?usage: gpu_verdict.sh SECONDS}
out=${OUT:?OUT is the folder whose files come back}
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1

if [ ! -f runs/started ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    mkdir -p runs && cp -r docs/runs/verdict runs/verdict && touch runs/started
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
    nproc
fi
export PYTHONPATH=/tmp/site:$PWD

if [ ! -f runs/launched ]; then
    grid() {  # log name, then verdict.py's arguments; a process session of its own outlives the call
        local name=$1
        shift
        setsid nohup python3 benchmarks/verdict.py --out runs/verdict "$@" >"runs/$name.log" 2>&1 </dev/null &
    }
    grid beauty-ce --dataset Beauty --data-path dataset/ --backbones CE --workers 8
    grid beauty-bce --dataset Beauty --data-path dataset/ --backbones BCE --seeds --trainers sam --workers 4
    export CUDA_VISIBLE_DEVICES=
    grid ml-100k --dataset ml-100k --backbones CE BCE --seeds 6 7 8 9 10 --workers 3
    unset CUDA_VISIBLE_DEVICES
    touch runs/launched
fi

pack() {
    tar -czf "$out/.records.tar.gz" runs/verdict/*/*/runs/*.json runs/*.log 2>/dev/null
    mv "$out/.records.tar.gz" "$out/records.tar.gz"
}

end=$((SECONDS + seconds))
while [ $SECONDS -lt $end ]; do
    pack
    sleep 20
done
pack
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader | wc -l
tail -n 4 runs/*.log
ls runs/verdict/*/*/runs | wc -l
