"""The command line behind ``run_experiments.py``: the paper's experiments as grids of runs."""

import argparse
import os
import shlex
import sys
import time
import warnings
from pathlib import Path

from recbole_sam.atomic import write_atomically, write_text
from recbole_sam.errors import ArgumentParser, ConfigError, Interrupted, exit_on_user_error
from recbole_sam.experiments import report, runner, verdict_cli
from recbole_sam.literals import parse_settings
from recbole_sam.run import describe_machine, machine

TITLES = {
    "table": "{models} with and without SAM (Tables 1 and 2)",
    "rho": "SAMRec against the radius rho (Figure 3)",
    "sparsity": "Fraction of the training data kept (Figure 2)",
}
# The grid sets these itself; --set may not (checkpoint_dir is each run's own, deleted after it).
GRID_KEYS = ("model", "dataset", "trainer", "seed", "checkpoint_dir")
SWEPT_KEYS = {"table": (), "rho": ("rho",), "sparsity": ("train_fraction",)}
# Inner runs are quiet: one progress bar over the runs instead of RecBole's per-epoch output.
QUIET = {"show_progress": False, "state": "WARNING"}


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def build_parser():
    parser = ArgumentParser(
        description="The SAMRec paper's experiments as resumable grids of recbole-sam runs.",
        epilog="Also: run_experiments.py {verdict,verdict-report,ablation,ablation-report,claims,rho-curve} --help "
        "(does SAM help SASRec? the claim-by-claim table; Figure 3 with intervals)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{table,rho,sparsity}")
    table = commands.add_parser("table", help=TITLES["table"].format(models="SASRec, S3Rec, CL4SRec"))
    table.add_argument("--models", nargs="+", default=list(runner.TABLE_MODELS), help="default: SASRec CL4SRec S3Rec")
    table.add_argument("--trainers", nargs="+", default=list(runner.TABLE_TRAINERS), help="default: plain sam")
    rho = commands.add_parser("rho", help=TITLES["rho"] + ", and plain SASRec")
    rho.add_argument("--rhos", nargs="+", type=float, default=list(runner.RHOS), help="default: 0.001 0.01 0.1 1 10")
    sparsity = commands.add_parser("sparsity", help=TITLES["sparsity"] + ": SASRec, SAMRec, CL4SRec")
    fractions = list(runner.FRACTIONS)
    sparsity.add_argument("--fractions", nargs="+", type=float, default=fractions, help="default: 0.6 0.8 1")

    for name, command in (("table", table), ("rho", rho), ("sparsity", sparsity)):
        add = command.add_argument
        add("--datasets", nargs="+", default=["ml-100k"], help="default: ml-100k")
        add("--seeds", nargs="+", type=int, default=[2020], help="default: 2020")
        add("--epochs", type=_positive_int, help="training epochs (S3Rec: fine-tuning; --set pretrain_epochs=N)")
        add("--stopping-step", type=_positive_int, help="early stopping patience, in validations")
        add("--data-path", help="folder of converted datasets (dataset/prepare.py)")
        add("--out", help=f"output folder (default: runs/{name})")
        add("--set", action="append", default=[], metavar="KEY=VALUE", help="config override of every run, repeatable")
        add("--config-files", nargs="+", default=[], help="YAML files of every run, later ones win")
        add("--keep-checkpoints", action="store_true", help="keep each run's saved model (<out>/saved/<run_id>/)")
        add("--threads", type=_positive_int, help="torch threads (of each run, with --workers; default: a share of the cores)")
        add("--workers", type=_positive_int, default=1, help="runs at once, as Ray tasks (default: 1, one after another)")
        add("--address", help="run the grid on this Ray cluster (host:port, ray://host:port or auto)")
        add("--no-progress", action="store_true", help="no progress bar")
    return parser


def grid_arms(args):
    """The ``(model, trainer, overrides)`` arms of the subcommand."""
    if args.command == "table":
        return runner.table_arms(_unique(args.models), _unique(args.trainers))
    if args.command == "rho":
        return runner.rho_arms(_unique(args.rhos))
    return runner.sparsity_arms(_unique(args.fractions))


def common_config(args):
    """The overrides of every run: quiet output, then --epochs and friends, then --set.

    Raises:
        ConfigError: a malformed --set, or one that names a key the grid or another option sets.
    """
    # threads goes into every run's config: each run sets torch's threads from it.
    options = {"epochs": args.epochs, "stopping_step": args.stopping_step, "data_path": args.data_path, "threads": args.threads}
    reserved = GRID_KEYS + SWEPT_KEYS[args.command]
    common = dict(QUIET, **{key: value for key, value in options.items() if value is not None})
    for key, value in parse_settings(args.set).items():
        if key in reserved:
            allowed = ", ".join(reserved)
            raise ConfigError(f"set: {key} is set by the {args.command} grid itself (not allowed: {allowed})")
        if options.get(key) is not None:
            raise ConfigError(f"set: {key} is also given as --{key.replace('_', '-')}; use one of them")
        common[key] = value
    return common


def check_reported_metrics(configs):
    """The tables show HR@10 and NDCG@10: refuse, before training, runs that would not compute them.

    Raises:
        ConfigError: a run whose ``metrics`` or ``topk`` leave one out.
    """
    for config in configs:
        metrics = {str(metric).lower() for metric in config["metrics"]}
        if not {"hit", "ndcg"} <= metrics or 10 not in config["topk"]:
            got = f"metrics {config['metrics']}, topk {config['topk']}"
            raise ConfigError(f"metrics/topk: the tables need Hit and NDCG at 10, got {got}")


def title(command_name, groups):
    """str: the subcommand's title; the table's names the models that ran, in table order."""
    models = ", ".join(dict.fromkeys(group["model"] for group in groups)) or "No model"
    return TITLES[command_name].format(models=models)


def results_markdown(command_name, records, groups, command):
    """str: results.md, the tables after the command, the date and the machine."""
    seconds = sum(record["seconds"] for record in records)
    return "\n".join(
        [
            f"# {title(command_name, groups)}",
            "",
            f"Command: `{command}`  ",
            f"Date: {time.strftime('%Y-%m-%d %H:%M')}  ",
            f"Machine: {describe_machine(machine())}  ",
            f"Runs: {len(records)}, {seconds / 60:.1f} min of training in all (one record each in `runs/`)",
            "",
            "Test HR@10 and NDCG@10, mean ± sample std over the n seeds. Hit epoch cap: how many of "
            "the n runs trained for all their epochs without early stopping (their best epoch may "
            "lie beyond the cap: more epochs could change them). Improv.: the relative improvement "
            "of the mean over the plain backbone named in `vs`, same dataset and settings.",
            "",
            report.markdown_tables(groups),
        ]
    )


def write_outputs(command_name, records, out, command):
    """results.csv, results.md and, for the sweeps, the figure, in ``out``.

    Returns:
        list of Path: the files written.
    """
    groups = report.summarize(records)
    written = [out / "results.csv", out / "results.md"]
    write_text(written[0], report.to_csv(report.to_rows(records)))
    write_text(written[1], results_markdown(command_name, records, groups, command))
    if command_name in ("rho", "sparsity"):
        from recbole_sam.experiments import plots  # matplotlib only for the figures

        draw = plots.plot_rho if command_name == "rho" else plots.plot_sparsity
        written.append(out / f"{command_name}.png")
        write_atomically(str(written[-1]), lambda tmp: draw(groups, tmp))
    return written


def run_command(args, command, out, run_fn=None):
    """Check the whole grid, run what is missing, write the outputs.

    Returns:
        tuple: the run records and the files written.
    """
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    runs = runner.expand_grid(grid_arms(args), _unique(args.datasets), _unique(args.seeds))
    common = common_config(args)
    check_reported_metrics(runner.validate_grid(runs, common, args.config_files))
    with warnings.catch_warnings():
        # RecBole 1.2.1's deprecation noise (pandas, GradScaler), repeated every run: not ours
        # to fix, and it would tear the progress bar apart.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")
        records = runner.run_grid(
            runs, out, common, args.config_files, command, run_fn, args.keep_checkpoints, not args.no_progress,
            workers=args.workers, address=args.address, threads=args.threads,
        )  # fmt: skip
    return records, write_outputs(args.command, records, out, command)


def _unique(values):
    return list(dict.fromkeys(values))


def main(argv=None, run_fn=None):
    """Run a subcommand's grid (skipping finished runs), then write its tables and figure.

    Args:
        argv (list of str, optional): the arguments (default: ``sys.argv[1:]``).
        run_fn (callable, optional): executes one run (see ``runner.run_grid``); tests pass a fake.

    Returns:
        list of dict: the run records.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] and argv[0] in verdict_cli.COMMANDS:
        return verdict_cli.main(argv)
    args = build_parser().parse_args(argv)
    command = shlex.join(["python", "run_experiments.py", *argv])
    out = Path(args.out or os.path.join("runs", args.command))
    interrupted = (
        f"interrupted: finished runs are in {out / 'runs'}; the same command resumes "
        "(an unfinished run goes on from its last epoch)"
    )
    with exit_on_user_error(interrupted):
        try:
            records, written = run_command(args, command, out, run_fn)
        except Interrupted:
            raise KeyboardInterrupt from None  # the grid's message, not the single run's
    print(report.markdown_tables(report.summarize(records)))
    print("wrote " + ", ".join(str(path) for path in written))
    return records
