"""Seconds per full-ranking validation: RecBole's path against recbole-sam's, same model weights.

    python benchmarks/eval_time.py --dataset Beauty --set data_path=dataset/ --repeats 5 --threads 1

"RecBole" is RecBole's ``Trainer.evaluate`` with RecBole's own SASRec class (right-padded
batches, its Python GELU, its collector); "ours" is our trainer and SASRec (packed batches,
fused GELU, ``OneTargetCollector``), without and with history masking. Both score the same
weights, and the script prints their metrics so that one can see they agree. Variants are
timed in turns after one warm-up; medians are reported.
"""

import argparse
import statistics
import time

import torch
from recbole.data import data_preparation
from recbole.model.sequential_recommender.sasrec import SASRec as RecBoleSASRec
from recbole.trainer import Trainer
from recbole.utils import init_seed

from recbole_sam.config import SAMConfig
from recbole_sam.data.dataset import create_dataset
from recbole_sam.model.sasrec import SASRec
from recbole_sam.trainer import PlainTrainer

VARIANTS = {
    "RecBole": {"eval_batch_size": 4096},
    "ours": {},
    "ours, history masked": {"eval_mask_history": True},
    "ours, masked and unmasked": {"eval_mask_history": True, "eval_report_both": True},
    # RecBole's eval_batch_size against ours (properties/model/SASRec.yaml: 512 users a batch)
    "ours, masked and unmasked, 4096 users a batch": {"eval_mask_history": True, "eval_report_both": True, "eval_batch_size": 4096},
}


def build(dataset, overrides):
    """One (name -> (trainer, valid_data)) per variant, all with the same weights."""
    built, weights = {}, None
    for name, options in VARIANTS.items():
        config = SAMConfig("SASRec", dataset, config_dict=dict(overrides, trainer="plain", state="ERROR", **options))
        init_seed(config["seed"], True)
        train, valid, _ = data_preparation(config, create_dataset(config))
        init_seed(config["seed"], True)
        if name == "RecBole":
            config["loss_type"] = "CE"  # RecBole's class knows CE and BPR; scoring is the same
            model = RecBoleSASRec(config, train._dataset)
            trainer = Trainer(config, model)
        else:
            model = SASRec(config, train._dataset)
            trainer = PlainTrainer(config, model)
        weights = weights or model.state_dict()
        model.load_state_dict(weights)
        built[name] = (trainer, valid)
    return built


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    built = build(args.dataset, dict(item.split("=", 1) for item in args.set))
    seconds = {name: [] for name in built}
    for repeat in range(args.repeats + 1):
        for name, (trainer, valid) in built.items():
            start = time.perf_counter()
            result = trainer.evaluate(valid, load_best_model=False)
            if repeat:
                seconds[name].append(time.perf_counter() - start)
            elif name:
                print(f"{name}: {dict(result)}")
    base = statistics.median(seconds["RecBole"])
    print("| path | s/validation (median) | × RecBole |\n|---|---|---|")
    for name, values in seconds.items():
        print(f"| {name} | {statistics.median(values):.2f} | {statistics.median(values) / base:.2f} |")


if __name__ == "__main__":
    main()
