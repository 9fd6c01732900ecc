"""The command line behind ``run_analysis.py``: loss landscapes and sharpness of checkpoints."""

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from recbole_sam.analysis.objective import OBJECTIVES
from recbole_sam.atomic import write_atomically
from recbole_sam.cli import parse_overrides
from recbole_sam.errors import ConfigError, exit_on_user_error
from recbole_sam.threads import set_threads

LOSS_NAMES = {"own": "training loss", "bce": "next-item BCE, fixed negatives", "ce": "next-item CE (full softmax)"}
OVERRIDES_HELP = "Any other --key=value overrides a setting of every checkpoint's config, e.g. --use_gpu=False."


def build_parser():
    parser = argparse.ArgumentParser(description="Loss landscapes and sharpness of recbole-sam checkpoints.")
    commands = parser.add_subparsers(dest="command", required=True)

    landscape = commands.add_parser(
        "landscape", help="2-D loss landscapes (NPZ, CSV, surface and contour PNGs)", epilog=OVERRIDES_HELP
    )
    landscape.add_argument("--grid", type=int, default=21, help="points per axis, odd (default: 21)")
    landscape.add_argument(
        "--range", type=float, default=1.0, dest="span", metavar="R", help="grid covers [-R, R]² (default: 1.0)"
    )
    landscape.add_argument("--zmax", type=float, help="clip plotted values above this (the NPZ and CSV keep all)")
    landscape.add_argument("--relative", action="store_true", help="plot L - L(Θ), for losses of different levels")
    landscape.add_argument("--no-progress", action="store_true", help="no progress bar")
    landscape.add_argument("--out", required=True, help="output folder")

    sharpness = commands.add_parser(
        "sharpness", help="top Hessian eigenvalue, Hessian trace, rho-sharpness (JSON)", epilog=OVERRIDES_HELP
    )
    sharpness.add_argument("--rho", type=float, default=0.05, help="radius for rho-sharpness (default: 0.05)")
    sharpness.add_argument("--iters", type=int, default=20, help="power iterations, Hutchinson samples (default: 20)")
    sharpness.add_argument("--ascent-steps", type=int, default=10, help="ascent steps for rho-sharpness (default: 10)")
    sharpness.add_argument(
        "--radius", type=float, default=0.1, help="relative loss rise: distance in filter-normalised units (default: 0.1)"
    )
    sharpness.add_argument("--directions", type=int, default=4, help="relative loss rise: random directions (default: 4)")
    sharpness.add_argument("--out", required=True, help="output JSON file")

    for command in (landscape, sharpness):
        command.add_argument(
            "--objective", default="own", choices=OBJECTIVES,
            help="own: each model's training loss; bce, ce: one next-item loss for all (default: own)",
        )
        command.add_argument("--checkpoints", nargs="+", required=True, help="saved .pth files")
        command.add_argument("--labels", nargs="+", help="one name per checkpoint (default: file names)")
        command.add_argument("--batches", type=int, default=4, help="training batches the loss averages (default: 4)")
        command.add_argument("--seed", type=int, default=0, help="directions, batches, random vectors (default: 0)")
        command.add_argument("--threads", type=int, help="torch threads (default: recbole_sam.threads.default_threads())")

    report = commands.add_parser("report", help="Markdown ratio table from sharpness JSON outputs (models x seeds)")
    report.add_argument("--inputs", nargs="+", required=True, help="JSON files written by the sharpness command")
    report.add_argument("--baseline", help="the label divided by every other (default: SASRec, else the first label)")
    report.add_argument("--out", help="write the table to this Markdown file (it is printed either way)")
    return parser


def _labels(args):
    """The checkpoints' labels, after the checks that need no loading."""
    if args.batches < 1:
        raise ConfigError(f"batches: must be an integer >= 1, got {args.batches}")
    if args.labels is None:
        return [Path(path).stem for path in args.checkpoints]
    if len(args.labels) != len(args.checkpoints):
        raise ConfigError(f"labels: {len(args.labels)} given for {len(args.checkpoints)} checkpoints")
    return args.labels


def _measured(args, labels, overrides):
    """Yield ``(path, label, loaded checkpoint, L)`` for each checkpoint, one at a time.

    A common objective (bce, ce) is built from each checkpoint's own dataset with the first
    checkpoint's batch size; every checkpoint must give the first one's batches (the same
    users' sequences, items and negatives), else the models are not measured on one function.
    """
    from recbole_sam.loading import load_checkpoint
    from recbole_sam.analysis.objective import model_objective, same_batches

    first = batch_size = None
    for path, label in zip(args.checkpoints, labels):
        loaded = load_checkpoint(path, config_dict=overrides)
        if args.objective != "own" and batch_size is None:
            batch_size = loaded.config["train_batch_size"]
        loss = model_objective(loaded.model, loaded.train_data, args.objective, args.batches, args.seed, batch_size)
        if args.objective != "own":
            if first is None:
                first = (path, loss.n_items, loss.batches)  # not the model: it is freed after its turn
            elif loss.n_items != first[1] or not same_batches(loss.batches, first[2]):
                raise ConfigError(
                    f"{path}: objective {args.objective}: its training sequences are not those of {first[0]} "
                    "(another dataset or filtering); the common objective needs one dataset for all checkpoints"
                )
        yield path, label, loaded, loss


def _write_csv(path, labels, checkpoints, landscapes):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "checkpoint", "alpha", "beta", "loss"])
        for label, checkpoint, land in zip(labels, checkpoints, landscapes):
            for j, beta in enumerate(land.coords):
                for i, alpha in enumerate(land.coords):
                    writer.writerow([label, checkpoint, f"{alpha:.6g}", f"{beta:.6g}", repr(float(land.losses[j, i]))])


def run_landscape(args, overrides):
    from recbole_sam.analysis.landscape import grid_coords, model_landscape
    from recbole_sam.analysis.plots import plot_contours, plot_surfaces  # matplotlib only for this command

    labels = _labels(args)
    grid_coords(args.grid, args.span)  # fail before loading anything
    landscapes = []
    for _, label, loaded, loss in _measured(args, labels, overrides):
        landscapes.append(
            model_landscape(
                loaded.model, None, args.grid, args.span, seed=args.seed, progress=not args.no_progress, desc=label,
                loss=loss,
            )
        )
    out = Path(args.out)
    raw = dict(
        coords=landscapes[0].coords, losses=np.stack([land.losses for land in landscapes]),
        labels=np.array(labels), checkpoints=np.array(args.checkpoints), seed=args.seed, batches=args.batches,
        objective=args.objective,
    )
    write_atomically(out / "landscape.npz", lambda tmp: np.savez(tmp, **raw))
    write_atomically(out / "landscape.csv", lambda tmp: _write_csv(tmp, labels, args.checkpoints, landscapes))
    style = dict(zmax=args.zmax, relative=args.relative)
    loss_name = LOSS_NAMES[args.objective]
    write_atomically(out / "landscape_surface.png", lambda tmp: plot_surfaces(landscapes, labels, tmp, **style))
    write_atomically(
        out / "landscape_contour.png", lambda tmp: plot_contours(landscapes, labels, tmp, loss_name=loss_name, **style)
    )
    for label, land in zip(labels, landscapes):
        print(f"{label}: L(Θ) = {land.center_loss:.6f}, max on grid = {land.losses.max():.6f}")
    print(f"wrote {out}/landscape.npz, landscape.csv, landscape_surface.png, landscape_contour.png")


def run_sharpness(args, overrides):
    from recbole_sam.analysis.sharpness import check_rise_options, check_sharpness_options, sharpness_measures

    labels = _labels(args)
    check_sharpness_options(args.rho, args.iters, args.ascent_steps)  # fail before loading anything
    check_rise_options(args.radius, args.directions)
    results = []
    for path, label, loaded, loss in _measured(args, labels, overrides):
        start, cpu_start = time.perf_counter(), time.process_time()
        measures = sharpness_measures(
            loaded.model, loss, args.rho, args.iters, args.ascent_steps, args.seed, args.radius, args.directions
        )
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        config = loaded.config
        results.append(
            dict(label=label, checkpoint=path, model=config["model"], dataset=config["dataset"],
                 train_seed=config["seed"], seconds=round(seconds, 2), cpu_seconds=round(cpu_seconds, 2), **measures)
        )  # fmt: skip
        print(f"{label}: " + ", ".join(f"{key} {_shown(value)}" for key, value in measures.items()) + f" ({seconds:.1f} s)")
    keys = ("objective", "rho", "iters", "ascent_steps", "batches", "seed", "radius", "directions")
    report = {"settings": {key: getattr(args, key) for key in keys}, "results": results}

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)

    write_atomically(args.out, write)
    print(f"wrote {args.out}")
    return report


def _shown(value):
    return "n/a" if value is None else f"{value:.6g}"


def run_report(args):
    from recbole_sam.sharpness_ratios import ratio_table, read_measurements

    table = ratio_table(read_measurements(args.inputs), args.baseline)
    if args.out:
        write_atomically(args.out, lambda tmp: Path(tmp).write_text(table, encoding="utf-8"))
    print(table)
    return table


def main(argv=None):
    args, unknown = build_parser().parse_known_args(argv)
    with exit_on_user_error():
        if args.command == "report":
            if unknown:
                raise ConfigError(f"report: unknown arguments {' '.join(unknown)}")
            run_report(args)
            return
        overrides = parse_overrides(unknown)
        if args.threads is not None and args.threads < 1:
            raise ConfigError(f"threads: must be an integer >= 1, got {args.threads}")
        set_threads(args.threads)
        run = run_landscape if args.command == "landscape" else run_sharpness
        run(args, overrides)
