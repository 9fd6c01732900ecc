"""The command lines of the verdict and the ablation: ``run_experiments.py verdict``,
``verdict-report``, ``ablation``, ``ablation-report``, and the claim-by-claim table and the
rho curve made from the records, ``claims`` and ``rho-curve`` (``benchmarks/verdict.py``,
``verdict_report.py``, ``ablation_report.py`` and ``ablation.sh`` call them).

    python run_experiments.py verdict --dataset ml-100k --out runs/verdict --workers 2
    python run_experiments.py verdict --model CL4SRec --dataset ml-100k --backbones BCE --out runs/table2/CL4SRec
    python run_experiments.py verdict-report --dataset ml-100k --out runs/verdict --plot verdict.png
    python run_experiments.py ablation --dataset ml-100k --rho 0.03 --seeds 2 3 4
    python run_experiments.py ablation-report --dataset ml-100k --out runs/ablation
    python run_experiments.py claims --runs docs/runs --write docs/results.md
    python run_experiments.py rho-curve BCE=docs/runs/verdict/ml-100k/BCE --plot rho_curve.png
"""

import shlex
import sys
from pathlib import Path

from recbole_sam.atomic import write_text
from recbole_sam.errors import ArgumentParser, exit_on_user_error
from recbole_sam.experiments import claims, paired, rho_curve, verdict
from recbole_sam.literals import parse_settings

COMMANDS = ("verdict", "verdict-report", "ablation", "ablation-report", "claims", "rho-curve")


def build_parser():
    parser = ArgumentParser(description="Does SAM help SASRec? The verdict's protocol, the ablation, their reports.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    run = commands.add_parser("verdict", help="selection of rho* on seed 1, then plain vs SAM at rho*, paired by seed")
    run.add_argument("--dataset", default="ml-100k")
    run.add_argument("--model", default="SASRec", choices=list(verdict.MODEL_OVERLAYS),
                     help="the model of both arms, in its paper setting (S3Rec: fine-tuning, --set pre_model_path=...)")
    run.add_argument("--data-path", help="folder of converted datasets (default: RecBole's)")
    run.add_argument("--backbones", nargs="+", default=list(verdict.BACKBONES), choices=list(verdict.BACKBONES))
    run.add_argument("--rhos", nargs="+", type=float, default=list(verdict.RHOS),
                     help="the SAM arm's selection grid (of --grid-key)")
    run.add_argument("--grid-key", default="rho", choices=list(paired.GRID_KEYS),
                     help="what --rhos set: rho, or saf_weight with --set sam_variant=saf (no ascent, no radius)")
    run.add_argument("--seeds", nargs="*", type=int, default=list(verdict.SEEDS), help="verdict seeds (none: selection only)")
    run.add_argument("--trainers", nargs="+", default=list(verdict.TRAINERS), choices=list(verdict.TRAINERS),
                     help="start only these arms' runs")  # fmt: skip
    run.add_argument("--out", default="runs/verdict")
    run.add_argument("--workers", type=int, default=1, help="runs at once, as Ray tasks")
    run.add_argument("--threads", type=int, default=1, help="torch threads of each run")
    run.add_argument("--address", help="run on this Ray cluster (host:port, ray://host:port or auto)")
    run.add_argument("--deadline", type=float, help="seconds after which no run is started and the driver stops")
    run.add_argument("--archive", help="after each finished run, write all records to this .tar.gz")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra override of every run")
    run.add_argument("--keep-checkpoints", action="store_true",
                     help="keep each run's trained model (<out>/<dataset>/<backbone>/saved/<run_id>/) for run_analysis.py")
    run.add_argument("--sweep", action="store_true",
                     help="SAM at every rho of --rhos on every seed, not only at rho* (Figure 3 with intervals)")  # fmt: skip

    report = commands.add_parser("verdict-report", help="the verdict's tables (and plot) from its records")
    report.add_argument("--out", default="runs/verdict")
    report.add_argument("--dataset", default="ml-100k")
    report.add_argument("--backbones", nargs="+", default=list(verdict.BACKBONES))
    report.add_argument("--valid-metric", default="ndcg@20")
    report.add_argument("--rhos", nargs="+", type=float, default=list(verdict.RHOS))
    report.add_argument("--plot", help="also draw the selection and the paired differences into this PNG")

    ablation = commands.add_parser("ablation", help="each correction alone, none and all, plain and SAM")
    ablation.add_argument("--dataset", default="ml-100k")
    ablation.add_argument("--data-path", help="folder of converted datasets (default: RecBole's)")
    ablation.add_argument("--rho", type=float, default=0.03)
    ablation.add_argument("--seeds", nargs="+", type=int, default=[2])
    ablation.add_argument("--corrections", nargs="+", default=list(verdict.ABLATIONS), choices=list(verdict.ABLATIONS))
    ablation.add_argument("--out", default="runs/ablation")
    ablation.add_argument("--workers", type=int, default=1)
    ablation.add_argument("--threads", type=int, default=1)
    ablation.add_argument("--address", help="run on this Ray cluster")

    ablation_report = commands.add_parser("ablation-report", help="the ablation's table from its records")
    ablation_report.add_argument("--out", default="runs/ablation")
    ablation_report.add_argument("--dataset", default="ml-100k")

    table = commands.add_parser("claims", help="the paper's claims, one row each, from the records")
    table.add_argument("--runs", default="docs/runs", help="the runs root (verdict/, fresh_dropout/, ...)")
    table.add_argument("--write", help="a Markdown file whose claims table (between its markers) is replaced")

    curve = commands.add_parser("rho-curve", help="SAM - plain at every rho, paired by seed (Figure 3 with intervals)")
    curve.add_argument("grids", nargs="+", metavar="LABEL=FOLDER", help="a grid's folder (holding runs/), labelled")
    curve.add_argument("--plot", help="also draw the curves into this PNG")
    return parser


def main(argv=None, command=None):
    """Run one of ``COMMANDS``; bad input is one ``error:`` line and exit code 2.

    Args:
        argv (list of str, optional): the subcommand and its options (default: ``sys.argv[1:]``).
        command (str, optional): the command line, for the records (default: run_experiments.py's).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    command = command or shlex.join(["python", "run_experiments.py", *argv])
    with exit_on_user_error("interrupted: finished runs keep their records; the same command resumes"):
        if args.command == "verdict":
            chosen = verdict.run_verdict(
                args.dataset, args.out, args.backbones, args.rhos, args.seeds, args.trainers, args.sweep,
                args.data_path, parse_settings(args.set), args.workers, args.threads, args.address, args.deadline,
                args.archive, command, model=args.model, keep_checkpoints=args.keep_checkpoints,
                grid_key=args.grid_key,
            )  # fmt: skip
            verdict.log(f"done; rho*: {chosen or 'not chosen yet'}")
        elif args.command == "verdict-report":
            records = verdict.load_grids(args.out, args.dataset, args.backbones)
            print(paired.verdict_report(records, args.dataset, args.valid_metric, args.rhos))
            if args.plot:
                paired.plot(records, args.dataset, args.valid_metric, args.rhos, args.plot)
        elif args.command == "ablation":
            verdict.run_ablation(args.dataset, args.out, args.rho, args.seeds, args.corrections, args.data_path,
                                 args.workers, args.threads, args.address, command)  # fmt: skip
            print(paired.ablation_table(verdict.load_grids(args.out, args.dataset, paired.ABLATION_ROWS)))
        elif args.command == "ablation-report":
            print(paired.ablation_table(verdict.load_grids(Path(args.out), args.dataset, paired.ABLATION_ROWS)))
        elif args.command == "claims":
            write_claims(args.runs, args.write)
        else:
            curves = {label: rho_curve.load_curve(folder) for label, _, folder in (g.partition("=") for g in args.grids)}
            for label, points in curves.items():
                print(f"### {label}\n\n{rho_curve.curve_markdown(points)}\n")
            if args.plot:
                rho_curve.plot_rho_curves(curves, args.plot)
                print(f"wrote {args.plot}")


def write_claims(runs, markdown=None):
    """Print the claims table, or put it between the claims markers of ``markdown``."""
    table = claims.claims_table(runs)
    if not markdown:
        print(table)
        return
    write_text(markdown, claims.replace_table(Path(markdown).read_text(encoding="utf-8"), table))
    print(f"wrote the claims table into {markdown}")
