"""The command line behind ``run_recbole_sam.py`` (and the ``recbole-sam`` console script)."""

import argparse

from recbole_sam.errors import ConfigError, exit_on_user_error


def parse_overrides(args):
    """``['--epochs=3', '--learning_rate', '0.01']`` -> ``{'epochs': '3', 'learning_rate': '0.01'}``.

    Values stay strings; RecBole's ``Config`` converts them as it does its own command line.

    Raises:
        ConfigError: an argument that is not ``--key=value`` or ``--key value``.
    """
    overrides, rest = {}, list(args)
    while rest:
        arg = rest.pop(0)
        if not arg.startswith("--") or len(arg) == 2:
            raise ConfigError(f"command line: unexpected argument {arg!r} (allowed: --key=value or --key value)")
        key, has_value, value = arg[2:].partition("=")
        if not has_value:
            if not rest or rest[0].startswith("--"):
                raise ConfigError(f"command line: --{key} needs a value (allowed: --{key}=VALUE or --{key} VALUE)")
            value = rest.pop(0)
        overrides[key] = value
    return overrides


def build_parser():
    parser = argparse.ArgumentParser(
        description="Train a RecBole model with Sharpness-Aware Minimization (SAMRec, RecSys'23).",
        epilog="Any other --key=value overrides a RecBole or recbole-sam property, e.g. --epochs=3 --train_batch_size=512.",
    )
    parser.add_argument("--model", "-m", default="SASRec", help="model name (default: SASRec)")
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name (default: ml-100k, shipped with RecBole)")
    parser.add_argument("--trainer", help="sam or plain (default: sam, from properties/overall.yaml)")
    parser.add_argument("--rho", help="SAM's ascent radius, > 0")
    parser.add_argument("--sam_variant", help="sam, asam or looksam")
    parser.add_argument("--config_files", help="space-separated YAML files, later ones win")
    parser.add_argument("--no-save", action="store_true", help="do not write a checkpoint; test the last model")
    return parser


def main(argv=None):
    args, unknown = build_parser().parse_known_args(argv)
    with exit_on_user_error():
        overrides = parse_overrides(unknown)
        for key in ("trainer", "rho", "sam_variant"):
            if getattr(args, key) is not None:
                overrides[key] = getattr(args, key)
        config_files = args.config_files.split() if args.config_files else None

        from recbole_sam.quick_start import run_recbole_sam  # heavy imports after the argument checks

        result = run_recbole_sam(
            args.model, args.dataset, config_file_list=config_files, config_dict=overrides, saved=not args.no_save
        )
    print(f"best valid: {dict(result['best_valid_result'] or {})}")
    print(f"test result: {dict(result['test_result'] or {})}")
    if result.get("checkpoint"):
        print(f"checkpoint: {result['checkpoint']}")
    return result
