"""Seconds per training epoch: RecBole's plain trainer against SAM and periodic SAM, same data and batches.

    python benchmarks/epoch_time.py                                   # SASRec on ml-100k
    python benchmarks/epoch_time.py --models SASRec CL4SRec --repeats 3 --out docs/benchmarks.md

Each trainer variant gets a fresh model and dataloaders built from the same seed, so every
variant trains on the same batches in the same order. Variants are timed in turns (plain,
SAM, periodic SAM, plain, ...) so that a slow spell on a shared machine hits all of them, and
the median epoch time is reported. The Markdown table is written (atomically) into the
``--out`` file between markers, keeping the rest of the file.
"""

import argparse
import itertools
import os
import platform
import shlex
import statistics
import sys
import time

import torch
from recbole.data import data_preparation
from recbole.utils import get_model as recbole_get_model
from recbole.utils import init_seed

from recbole_sam.config import SAMConfig
from recbole_sam.data.dataset import create_dataset
from recbole_sam.experiments.verdict import paper_config_files
from recbole_sam.registry import get_model, get_trainer

# RecBole's own SASRec class and settings (CE over all items, one sample per prefix, batch 2048),
# for comparing our training scheme against stock RecBole.
RECBOLE_STOCK = {"trainer": "plain", "loss_type": "CE", "train_scheme": "prefix", "train_batch_size": 2048}

VARIANTS = {
    "RecBole stock SASRec": dict(RECBOLE_STOCK, recbole_model=True),
    "plain": {"trainer": "plain"},
    "plain, unpacked": {"trainer": "plain", "pack_sequences": False},
    "SAM (k=1)": {"trainer": "sam", "sam_interval": 1},
    "SAM (k=1), unpacked": {"trainer": "sam", "sam_interval": 1, "pack_sequences": False},
    "plain, CL4SRec slow path": {"trainer": "plain", "cl_fast_path": False},
    "SAM (k=1), CL4SRec slow path": {"trainer": "sam", "sam_interval": 1, "cl_fast_path": False},
    "SAM (k=5)": {"trainer": "sam", "sam_interval": 5},
    "LookSAM (k=5)": {"trainer": "sam", "sam_variant": "looksam", "sam_interval": 5},
    "SAM dense": {"trainer": "sam", "sam_params": "dense"},
    "SAM norm": {"trainer": "sam", "sam_params": "norm"},
    "Helen": {"trainer": "sam", "sam_variant": "helen"},
    # The warm-up epoch is the lag: every timed epoch carries the trajectory loss.
    "SAF (E=1)": {"trainer": "sam", "sam_variant": "saf", "saf_lag": 1},
}


def build_trainer(model_name, dataset, overrides, config_files=None):
    overrides = dict(overrides)
    recbole_model = overrides.pop("recbole_model", False)
    config = SAMConfig(model_name, dataset, config_files, dict(overrides, show_progress=False, state="ERROR"))
    init_seed(config["seed"], config["reproducibility"])
    train_data = data_preparation(config, create_dataset(config))[0]
    init_seed(config["seed"], config["reproducibility"])
    model_class = recbole_get_model(model_name) if recbole_model else get_model(config["model"])
    model = model_class(config, train_data._dataset).to(config["device"])
    return get_trainer(config)(config, model), train_data


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_epochs(model_name, dataset, variants, repeats, overrides, max_batches=None, clock="wall", config_files=None):
    """Median seconds per epoch and batches per epoch of each variant, timed in turns.

    With ``max_batches``, each timed "epoch" is its first ``max_batches`` batches, and the
    epoch time is extrapolated from them (for models whose full epoch takes many minutes).
    ``clock``: ``wall`` seconds, or ``cpu`` seconds of this process (with one thread, the
    work done, hardly moved by other processes competing for the cores). ``config_files``:
    YAML files read before ``overrides`` (e.g. the model's paper setting).
    """
    now = CLOCKS[clock]
    runs = {name: build_trainer(model_name, dataset, dict(overrides, **VARIANTS[name]), config_files) for name in variants}
    seconds = {name: [] for name in variants}
    for epoch in range(repeats + 1):  # epoch 0 warms up caches and is not counted
        for name, (trainer, train_data) in runs.items():
            batches = train_data if max_batches is None else itertools.islice(train_data, max_batches)
            start = now()
            trainer._train_epoch(batches, epoch)
            if epoch > 0:
                timed = len(train_data) if max_batches is None else min(max_batches, len(train_data))
                seconds[name].append((now() - start) * len(train_data) / timed)
    return {name: (statistics.median(values), len(runs[name][1])) for name, values in seconds.items()}


def markdown_table(results, command, max_batches=None, clock="wall"):
    lines = [
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores visible, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; run on {time.strftime('%Y-%m-%d')}."
        + (f" Epoch times extrapolated from the first {max_batches} batches." if max_batches else "")
        + (" Seconds are the process's CPU time, not wall time." if clock == "cpu" else ""),
        "",
        "| model | dataset | variant | batches/epoch | s/epoch (median) | × plain |",
        "|---|---|---|---|---|---|",
    ]
    for (model_name, dataset), times in results.items():
        plain = times["plain"][0] if "plain" in times else float("nan")
        for name, (value, batches) in times.items():
            lines.append(f"| {model_name} | {dataset} | {name} | {batches} | {value:.2f} | {value / plain:.2f} |")
    return "\n".join(lines)


def write_section(path, marker, text):
    """Replace the text between ``<!-- marker -->`` lines in ``path`` (or append it), atomically."""
    begin, end = f"<!-- {marker} begin -->", f"<!-- {marker} end -->"
    old = open(path, encoding="utf-8").read() if os.path.exists(path) else "# Benchmarks\n"
    block = f"{begin}\n{text}\n{end}"
    if begin in old and end in old:
        new = old[: old.index(begin)] + block + old[old.index(end) + len(end) :]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as f:
        f.write(new)
    os.replace(partial, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["SASRec"])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--variants", nargs="+", default=["plain", "SAM (k=1)", "SAM (k=5)"], choices=list(VARIANTS))
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs per variant (after one warm-up)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides, e.g. train_scheme=prefix")
    parser.add_argument("--batches", type=int, default=None, help="time only the first N batches of each epoch and extrapolate")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--clock", default="wall", choices=list(CLOCKS), help="wall seconds, or the process's CPU seconds (for a busy machine)")
    parser.add_argument("--paper", action="store_true",
                        help="each model in its paper setting (properties/paper/<dataset>.yaml and the model's overlay)")
    parser.add_argument("--out", default=None, help="Markdown file to write the table into")
    parser.add_argument("--section", default="epoch-time", help="marker of the section in --out")
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    if args.threads:
        torch.set_num_threads(args.threads)

    results = {}
    for model_name in args.models:
        files = paper_config_files(args.dataset, model_name) if args.paper else None
        results[(model_name, args.dataset)] = time_epochs(
            model_name, args.dataset, args.variants, args.repeats, overrides, args.batches, args.clock, files
        )
        print(f"{model_name}: {results[(model_name, args.dataset)]}", flush=True)
    command = "python " + " ".join(shlex.quote(arg) for arg in sys.argv)
    table = markdown_table(results, command, args.batches, args.clock)
    print(table)
    if args.out:
        write_section(args.out, args.section, table)


if __name__ == "__main__":
    main()
