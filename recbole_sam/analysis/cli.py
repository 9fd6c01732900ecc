"""The command line behind ``run_analysis.py``: loss landscapes and sharpness of checkpoints."""

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from recbole_sam.atomic import write_atomically
from recbole_sam.errors import ConfigError, exit_on_user_error
from recbole_sam.literals import parse_overrides
from recbole_sam.threads import set_threads

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
    sharpness.add_argument("--out", required=True, help="output JSON file")

    for command in (landscape, sharpness):
        command.add_argument("--checkpoints", nargs="+", required=True, help="saved .pth files")
        command.add_argument("--labels", nargs="+", help="one name per checkpoint (default: file names)")
        command.add_argument("--batches", type=int, default=4, help="training batches the loss averages (default: 4)")
        command.add_argument("--seed", type=int, default=0, help="directions, batches, random vectors (default: 0)")
        command.add_argument("--threads", type=int, help="torch threads (default: recbole_sam.threads.default_threads())")
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
    from recbole_sam.loading import load_checkpoint
    from recbole_sam.analysis.plots import plot_contours, plot_surfaces  # matplotlib only for this command

    labels = _labels(args)
    grid_coords(args.grid, args.span)  # fail before loading anything
    landscapes = []
    for path, label in zip(args.checkpoints, labels):
        loaded = load_checkpoint(path, config_dict=overrides)
        landscapes.append(
            model_landscape(
                loaded.model, loaded.train_data, args.grid, args.span, args.batches, args.seed,
                progress=not args.no_progress, desc=label,
            )
        )
    out = Path(args.out)
    raw = dict(
        coords=landscapes[0].coords, losses=np.stack([land.losses for land in landscapes]),
        labels=np.array(labels), checkpoints=np.array(args.checkpoints), seed=args.seed, batches=args.batches,
    )
    write_atomically(out / "landscape.npz", lambda tmp: np.savez(tmp, **raw))
    write_atomically(out / "landscape.csv", lambda tmp: _write_csv(tmp, labels, args.checkpoints, landscapes))
    style = dict(zmax=args.zmax, relative=args.relative)
    write_atomically(out / "landscape_surface.png", lambda tmp: plot_surfaces(landscapes, labels, tmp, **style))
    write_atomically(out / "landscape_contour.png", lambda tmp: plot_contours(landscapes, labels, tmp, **style))
    for label, land in zip(labels, landscapes):
        print(f"{label}: L(Θ) = {land.center_loss:.6f}, max on grid = {land.losses.max():.6f}")
    print(f"wrote {out}/landscape.npz, landscape.csv, landscape_surface.png, landscape_contour.png")


def run_sharpness(args, overrides):
    from recbole_sam.loading import load_checkpoint
    from recbole_sam.analysis.sharpness import check_sharpness_options, model_sharpness

    labels = _labels(args)
    check_sharpness_options(args.rho, args.iters, args.ascent_steps)  # fail before loading anything
    results = []
    for path, label in zip(args.checkpoints, labels):
        loaded = load_checkpoint(path, config_dict=overrides)
        measures = model_sharpness(
            loaded.model, loaded.train_data, args.rho, args.iters, args.ascent_steps, args.batches, args.seed
        )
        config = loaded.config
        results.append(dict(label=label, checkpoint=path, model=config["model"], dataset=config["dataset"], **measures))
        print(f"{label}: " + ", ".join(f"{key} {value:.6g}" for key, value in measures.items()))
    report = {
        "settings": {key: getattr(args, key) for key in ("rho", "iters", "ascent_steps", "batches", "seed")},
        "results": results,
    }

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)

    write_atomically(args.out, write)
    print(f"wrote {args.out}")
    return report


def main(argv=None):
    args, unknown = build_parser().parse_known_args(argv)
    with exit_on_user_error():
        overrides = parse_overrides(unknown)
        if args.threads is not None and args.threads < 1:
            raise ConfigError(f"threads: must be an integer >= 1, got {args.threads}")
        set_threads(args.threads)
        run = run_landscape if args.command == "landscape" else run_sharpness
        run(args, overrides)
