"""Does SAM help SASRec? The protocol of issue 9, as one resumable, parallel grid.

For each backbone (the paper's BCE SASRec, and the CE SASRec):
  1. selection, seed 1: plain, and SAM at each rho in --rhos; rho* = the SAM run with the best
     validation score (``valid_metric``; the test set plays no part);
  2. verdict, seeds --seeds: plain and SAM at rho*, paired (same seed: same initial weights
     and batch order).
Plain runs of step 2 need no rho*, so they start at once; SAM runs of step 2 start as soon as
their backbone's selection is complete. Every run is recbole-sam's experiment runner (one JSON
record per finished run, written atomically, skipped when present: rerun the same command to
resume). Runs execute in --workers processes with --threads torch threads each.

    python benchmarks/verdict.py --dataset ml-100k --out runs/verdict --workers 2
    python benchmarks/verdict.py --dataset Beauty --data-path dataset/ --out runs/verdict --workers 15

The report (tables, paired differences with 95% intervals) is ``benchmarks/verdict_report.py``.
"""

import argparse
import json
import multiprocessing
import os
import sys
import tarfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

BACKBONES = {"BCE": {}, "CE": {"loss_type": "CE"}}
RHOS = (0.01, 0.03, 0.1, 0.3, 1.0)
SELECTION_SEED = 1


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--data-path", help="folder of converted datasets (default: RecBole's)")
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=list(BACKBONES))
    parser.add_argument("--rhos", nargs="+", type=float, default=list(RHOS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[2, 3, 4, 5, 6], help="verdict seeds (none: selection only)")
    parser.add_argument(
        "--trainers", nargs="+", default=["plain", "sam"], choices=["plain", "sam"], help="start only these arms' runs"
    )
    parser.add_argument("--out", default="runs/verdict")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--deadline", type=float, help="seconds after which no run is started and the driver stops")
    parser.add_argument("--archive", help="after each finished run, write all records to this .tar.gz")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra override of every run")
    parser.add_argument(
        "--sweep", action="store_true", help="SAM at every rho of --rhos on every seed, not only at rho* (Figure 3 with intervals)"
    )
    return parser.parse_args(argv)


def grid_dir(args, backbone):
    return Path(args.out) / args.dataset / backbone


def common_config(args, backbone):
    common = {"show_progress": False, "state": "WARNING", "threads": args.threads, **BACKBONES[backbone]}
    if args.data_path:
        common["data_path"] = args.data_path
    for item in args.set:
        key, _, value = item.partition("=")
        common[key] = value
    return common


def config_files(args):
    return [str(Path(__file__).resolve().parent.parent / "properties" / "paper" / f"{args.dataset}.yaml")]


def execute(out, run_fields, common, files, threads, command):
    """One run in a worker process; returns its record."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    from recbole_sam.experiments import runner

    run = runner.Run(**run_fields)
    return runner.run_grid([run], out, common, files, command=command, progress=False)[0]


def run_fields(args, trainer, seed, rho=None):
    overrides = () if rho is None else (("rho", float(rho)),)
    return dict(dataset=args.dataset, model="SASRec", trainer=trainer, seed=seed, overrides=overrides)


def record_path(args, backbone, fields):
    from recbole_sam.experiments import runner

    return grid_dir(args, backbone) / "runs" / f"{runner.Run(**fields).run_id}.json"


def choose_rho(args, backbone, valid_key):
    """rho* from the selection records (validation only), or None while any is missing."""
    scores = {}
    for rho in args.rhos:
        path = record_path(args, backbone, run_fields(args, "sam", SELECTION_SEED, rho))
        if not path.exists():
            return None
        scores[rho] = json.loads(path.read_text())["best_valid_result"][valid_key]
    return max(scores, key=scores.get)


def write_archive(args):
    if not args.archive:
        return
    tmp = args.archive + ".partial"
    with tarfile.open(tmp, "w:gz") as tar:
        # Records only: running runs' checkpoints would make the archive too big to copy back.
        tar.add(Path(args.out) / args.dataset, arcname=args.dataset, filter=lambda info: None if "/saved" in info.name else info)
    os.replace(tmp, args.archive)


def log(message):
    print(time.strftime("%H:%M:%S"), message, flush=True)


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    command = "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])
    from recbole_sam.config import SAMConfig

    valid_key = SAMConfig("SASRec", args.dataset, config_files(args), {**common_config(args, "BCE"), "state": "ERROR"})[
        "valid_metric"
    ].lower()
    # Ready tasks; the queue is kept in priority order (see priority()).
    ready = [(b, run_fields(args, "plain", SELECTION_SEED)) for b in args.backbones]
    ready += [(b, run_fields(args, "sam", SELECTION_SEED, rho)) for b in args.backbones for rho in args.rhos]
    ready += [(b, run_fields(args, "plain", seed)) for seed in args.seeds for b in args.backbones]
    if args.sweep:  # every rho is paired, so no SAM run waits for rho*
        ready += [(b, run_fields(args, "sam", s, rho)) for s in args.seeds for b in args.backbones for rho in args.rhos]

    def priority(task):
        # Selection first (by backbone), then the verdict seed by seed, each seed's pair together,
        # so that an interrupted grid holds whole pairs.
        backbone, fields = task
        selection = fields["seed"] == SELECTION_SEED
        order = args.backbones.index(backbone)
        is_sam = fields["trainer"] != "plain"
        return (0, order, is_sam) if selection else (1, args.seeds.index(fields["seed"]), order, is_sam)

    waiting = set() if args.sweep else set(args.backbones)  # backbones whose SAM verdict runs wait for rho*
    ready = [task for task in ready if not record_path(args, *task).exists()]

    context = multiprocessing.get_context("spawn")
    running = {}
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=context) as pool:
        while True:
            for backbone in sorted(waiting):
                rho = choose_rho(args, backbone, valid_key)
                if rho is not None:
                    waiting.discard(backbone)
                    log(f"{backbone}: rho* = {rho} (best validation {valid_key} of seed {SELECTION_SEED})")
                    ready += [
                        (backbone, fields)
                        for seed in args.seeds
                        for fields in [run_fields(args, "sam", seed, rho)]
                        if not record_path(args, backbone, fields).exists()
                    ]
            ready.sort(key=priority)
            late = args.deadline and time.time() - start > args.deadline
            ready = [task for task in ready if task[1]["trainer"] in args.trainers]
            while ready and len(running) < args.workers and not late:
                backbone, fields = ready.pop(0)
                out = grid_dir(args, backbone)
                future = pool.submit(
                    execute, str(out), fields, common_config(args, backbone), config_files(args), args.threads, command
                )
                running[future] = (backbone, fields)
            if not running:
                break
            done, _ = wait(list(running), timeout=30, return_when=FIRST_COMPLETED)
            for future in done:
                backbone, fields = running.pop(future)
                try:
                    record = future.result()
                    history = record.get("history") or {}
                    log(
                        f"{backbone} {fields['trainer']} seed {fields['seed']} {dict(fields['overrides'])}: "
                        f"test {record['test_result']}, best epoch {history.get('best_epoch')}, "
                        f"stopped {history.get('stopping_epoch')}, cap {history.get('hit_cap')}, {record['seconds']:.0f} s"
                    )
                except Exception as error:  # one broken run must not lose the others
                    log(f"{backbone} {fields}: FAILED {error!r}")
                write_archive(args)
            if args.deadline and time.time() - start > args.deadline and not running:
                break
            if args.deadline and time.time() - start > args.deadline + 60:
                log("deadline passed: stopping with runs unfinished; the same command resumes them")
                write_archive(args)
                os._exit(0)
    write_archive(args)
    log(f"done in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
