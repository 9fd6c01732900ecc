"""Do eval_mask_value's two rules (exclude, zero) give different test metrics? One paper-setting
run, then its best checkpoint tested under each rule.

    python benchmarks/mask_value_check.py --dataset ml-100k --seed 2
    python benchmarks/mask_value_check.py --dataset Beauty --seed 2 --set data_path=dataset/
"""

import argparse
from pathlib import Path

from recbole.data import data_preparation
from recbole.utils import init_seed

from recbole_sam.config import SAMConfig
from recbole_sam.data.dataset import create_dataset
from recbole_sam.literals import parse_literal
from recbole_sam.registry import get_model, get_trainer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    paper = Path(__file__).resolve().parent.parent / "properties" / "paper" / f"{args.dataset}.yaml"
    options = {key: parse_literal(key, value) for key, _, value in (item.partition("=") for item in args.set)}
    config_dict = dict(show_progress=False, state="WARNING", threads=1, trainer="plain", seed=args.seed, **options)
    config = SAMConfig("SASRec", args.dataset, [str(paper)], config_dict=config_dict)
    init_seed(config["seed"], True)
    train, valid, test = data_preparation(config, create_dataset(config))
    init_seed(config["seed"], True)
    trainer = get_trainer(config)(config, get_model(config["model"])(config, train._dataset))
    trainer.fit(train, valid, saved=True, show_progress=False)
    for rule in ("exclude", "zero"):
        trainer.mask_value = rule
        result = trainer.evaluate(test, load_best_model=True)
        print(rule, {key: round(float(result[key]), 4) for key in ("hit@10", "ndcg@10", "hit@20", "ndcg@20")}, flush=True)


if __name__ == "__main__":
    main()
