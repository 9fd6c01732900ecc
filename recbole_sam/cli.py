"""The command line behind ``run_recbole_sam.py`` and the ``recbole-sam`` console script
(``recbole-sam tune ...`` runs the hyper-parameter search)."""

import argparse
import re
import shlex

from recbole_sam.compat import plain_numbers
from recbole_sam.errors import ConfigError, exit_on_user_error
from recbole_sam.literals import parse_overrides

DEFAULT_MODEL, DEFAULT_DATASET = "SASRec", "ml-100k"


def _options_help():
    """The keys of properties/overall.yaml, one line each, from its ``# (type) description`` comments."""
    from recbole_sam.property_files import properties_dir

    lines = []
    for line in (properties_dir() / "overall.yaml").read_text(encoding="utf-8").splitlines():
        match = re.match(r"^(\w+):\s*(.*?)\s*#\s*(\(\w+\))?\s*(.*)$", line)
        if match:
            key, default, kind, text = match.groups()
            lines.append(f"  --{key}={default} {kind or ''} {text}".rstrip())
    return "\n".join(lines)


def _models_help():
    from recbole_sam.registry import MODELS, trainable_models

    lines = [f"models (any letter case; {', '.join(MODELS)} are recbole-sam's, the others RecBole's, trained by its Trainer):"]
    for family, names in trainable_models().items():
        lines.append(f"  {family.replace('_', '-')}: {', '.join(names)}")
    return "\n".join(lines)


def build_parser():
    parser = argparse.ArgumentParser(
        description="Train a RecBole model with Sharpness-Aware Minimization (SAMRec, RecSys'23).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Any other --key=value sets a RecBole or recbole-sam property, e.g. --epochs=3 --train_batch_size=512;\n"
            "values are read as literals (numbers, True/False, words, [lists]), never evaluated.\n\n"
            f"recbole-sam's properties (properties/overall.yaml):\n{_options_help()}\n\n{_models_help()}\n\n"
            "Hyper-parameter search: recbole-sam tune --help"
        ),
    )
    parser.add_argument("--model", "-m", help=f"model name (default: {DEFAULT_MODEL})")
    parser.add_argument("--dataset", "-d", help=f"dataset name (default: {DEFAULT_DATASET}, shipped with RecBole)")
    parser.add_argument("--trainer", help="sam or plain (default: sam, from properties/overall.yaml)")
    parser.add_argument("--rho", help="SAM's ascent radius, > 0")
    parser.add_argument("--sam_variant", help="sam, asam, looksam, helen or saf")
    parser.add_argument("--config_files", help="space-separated YAML files, later ones win")
    parser.add_argument("--no-save", action="store_true", help="do not write a checkpoint; test the last model")
    parser.add_argument("--resume", action="store_true", help="go on with the newest interrupted run of this model and dataset")
    parser.add_argument("--resume_from", metavar="PATH", help="go on with the interrupted run of this <run_id>-last.pth")
    parser.add_argument("--strict", action="store_true", help="unknown keys are errors, not warnings")
    parser.add_argument("--verbose", "-v", action="store_true", help="also print the config, dataset and model (always in the log)")
    return parser


def main(argv=None):
    """Run the command line: ``recbole-sam tune ...`` searches, anything else trains.

    Returns:
        dict: ``run_recbole_sam``'s result.
    """
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["tune"]:
        from recbole_sam.tune.cli import main as tune_main  # written apart; imported only when asked for

        return tune_main(argv[1:])
    args, unknown = build_parser().parse_known_args(argv)
    command = shlex.join(["python", "run_recbole_sam.py", *argv])
    with exit_on_user_error():
        result = _train(args, parse_overrides(unknown), command)
    if result["best_valid_result"] is None:  # RecBole's "no validation": eval_step 0 (or > epochs)
        print("no validation: no epoch was validated (eval_step: 0); the test result is the last epoch's model's")
    else:
        print(f"best valid: {plain_numbers(result['best_valid_result'])}")
    print(f"test result: {plain_numbers(result['test_result'])}")
    if result.get("checkpoint"):
        print(f"checkpoint: {result['checkpoint']}")
    return result


def _set_in_files(config_files, key):
    """Whether one of the YAML files sets ``key`` (unreadable files are SAMConfig's to report)."""
    import yaml

    for file in config_files or []:
        try:
            with open(file, encoding="utf-8") as f:
                content = yaml.safe_load(f)
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(content, dict) and content.get(key) is not None:
            return True
    return False


def _train(args, overrides, command=""):
    for key in ("trainer", "rho", "sam_variant"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if args.strict:
        overrides["strict"] = True
    if args.resume and args.resume_from:
        raise ConfigError("resume: give --resume or --resume_from PATH, not both")
    resume_from = args.resume_from or ("latest" if args.resume else None)
    model, dataset = args.model, args.dataset
    config_files = args.config_files.split() if args.config_files else None
    if resume_from != args.resume_from or resume_from is None:  # a new run, or the newest of model x dataset
        # A config file's model/dataset (a search's best.yaml, say) wins over the defaults.
        model = model or (None if _set_in_files(config_files, "model") else DEFAULT_MODEL)
        dataset = dataset or (None if _set_in_files(config_files, "dataset") else DEFAULT_DATASET)

    from recbole_sam.quick_start import run_recbole_sam  # heavy imports after the argument checks

    return run_recbole_sam(
        model, dataset, config_file_list=config_files, config_dict=overrides, saved=not args.no_save,
        resume_from=resume_from, verbose=args.verbose, command=command,
    )
