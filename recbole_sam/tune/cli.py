"""The command line behind ``run_recbole_sam_tune.py`` (and ``recbole-sam tune``)."""

import shlex
import sys

from recbole_sam.errors import ArgumentParser, ConfigError, exit_on_user_error
from recbole_sam.literals import parse_overrides
from recbole_sam.tune.space import SCHEDULERS, SEARCHES


def build_parser():
    parser = ArgumentParser(
        description="Search recbole-sam hyperparameters (rho, learning rate, ...) with Ray Tune.",
        epilog="Any other --key=value is a property of every trial, e.g. --epochs=20. "
        "loguniform low,high in a params file are natural-log exponents, as in RecBole.",
    )
    add = parser.add_argument
    add("--model", "-m", default="SASRec", help="model name (default: SASRec)")
    add("--dataset", "-d", default="ml-100k", help="dataset name (default: ml-100k)")
    add("--params_file", help="RecBole .hyper file: 'name choice [..]|uniform a,b|quniform a,b,q|loguniform a,b' lines")
    add("--config_files", help="space-separated YAML files of every trial")
    add("--search", default="random", help=f"{', '.join(SEARCHES)} (default: random)")
    add("--scheduler", default="asha", help=f"{', '.join(SCHEDULERS)}, over validations (default: asha)")
    add("--num_samples", type=int, help="trials (default: 10; grid: 1, every combination once)")
    add("--seed", type=int, default=2020, help="seed of the search algorithm (default: 2020)")
    add("--cpus_per_trial", type=int, default=1, help="CPUs a trial reserves, and its torch threads (default: 1)")
    add("--gpus_per_trial", type=float, help="GPUs a trial reserves, fractions allowed (default: 1 with a GPU, else 0; 0 trains on the CPU)")
    add("--max_concurrent", type=int, help="at most this many trials at once (default: as many as fit)")
    add("--storage_path", default="tune_results", help="folder of searches (default: ./tune_results)")
    add("--name", help="the search's folder under --storage_path (default: <model>_<dataset>_<time>)")
    add("--address", help="join this Ray cluster (default: RAY_ADDRESS, else a local Ray)")
    add("--resume", action="store_true", help="continue the search in --storage_path/--name; finished trials are kept")
    return parser


def main(argv=None):
    """Run a search from the command line; bad input is one ``error:`` line and exit code 2.

    Args:
        argv (list of str, optional): the arguments (default: ``sys.argv[1:]``).

    Returns:
        dict: ``run_search``'s result.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args, unknown = build_parser().parse_known_args(argv)
    command = shlex.join(["python", "run_recbole_sam_tune.py", *argv])
    with exit_on_user_error("interrupted"):
        overrides = parse_overrides(unknown)
        if not args.resume and args.params_file is None:
            raise ConfigError("params_file: required (e.g. properties/tune/sam.hyper), unless --resume")
        from recbole_sam.tune.search import run_search  # torch and RecBole after the checks

        # Ctrl-C or SIGTERM: SearchInterrupted's message says how to --resume (exit code 130 or 143).
        return run_search(
            args.model,
            args.dataset,
            params_file=args.params_file,
            config_dict=overrides,
            config_file_list=args.config_files.split() if args.config_files else None,
            search=args.search,
            scheduler=args.scheduler,
            num_samples=args.num_samples,
            seed=args.seed,
            cpus_per_trial=args.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial,
            storage_path=args.storage_path,
            name=args.name,
            address=args.address,
            resume=args.resume,
            max_concurrent=args.max_concurrent,
            command=command,
        )
