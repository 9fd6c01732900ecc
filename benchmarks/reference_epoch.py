"""Seconds per epoch of the S3Rec authors' own code against ours, timed in turns in one process.

    git clone https://github.com/RUCAIBox/CIKM2020-S3Rec ../CIKM2020-S3Rec
    python benchmarks/reference_epoch.py --reference ../CIKM2020-S3Rec --data-dir ../shared/datasets/s3rec \
        --pre-model-path ../shared/checkpoints/Beauty-epochs-150.pt --batches 20 --repeats 2 --threads 1

The reference (RUCAIBox/CIKM2020-S3Rec, the code the SAMRec paper's S3Rec, and its SASRec
setting, come from) runs as its scripts run it: ``PretrainTrainer.pretrain`` on a
``PretrainDataset`` loader of ``pre_batch_size`` 100 (run_pretrain.py:92-97), and
``FinetuneTrainer.train`` on a ``SASRecDataset`` loader of 256 (run_finetune_full.py:86-88),
with the scripts' default arguments. Ours runs each stage in its paper setting
(``properties/paper/<dataset>.yaml`` and the S3Rec overlay), through RecBole's trainer. Each
stage's "epoch" is its first ``--batches`` batches, extrapolated to the whole epoch; arms are
timed in turns, one warm-up round not counted, the median reported. ``--clock cpu`` (default)
counts this process's CPU seconds, which other processes on the machine hardly move.
"""

import argparse
import contextlib
import io
import itertools
import os
import shlex
import statistics
import sys
import tempfile
import time
from argparse import Namespace

import torch
from torch.utils.data import DataLoader, RandomSampler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from epoch_time import CLOCKS, build_trainer, write_section  # noqa: E402

from recbole_sam.experiments.verdict import paper_config_files  # noqa: E402

# run_pretrain.py:25-60 and run_finetune_full.py:15-58, their defaults.
REFERENCE_ARGS = dict(
    hidden_size=64, num_hidden_layers=2, num_attention_heads=2, hidden_act="gelu", attention_probs_dropout_prob=0.5,
    hidden_dropout_prob=0.5, initializer_range=0.02, max_seq_length=50, lr=0.001, batch_size=256, pre_batch_size=100,
    mask_p=0.2, aap_weight=0.2, mip_weight=1.0, map_weight=1.0, sp_weight=0.5, weight_decay=0.0, adam_beta1=0.9,
    adam_beta2=0.999, no_cuda=True, cuda_condition=False, log_freq=10**9, model_name="timing",
)  # fmt: skip


def reference_arms(repo, data_dir, dataset, batches):
    """``{("reference", stage): (epoch_fn, batches_per_epoch)}`` of the reference's two stages; ``epoch_fn(i)``
    trains the first ``batches`` batches of a fresh shuffle."""
    sys.path.insert(0, os.path.abspath(repo))
    from datasets import PretrainDataset, SASRecDataset  # the reference's modules
    from models import S3RecModel
    from trainers import FinetuneTrainer, PretrainTrainer
    from utils import get_item2attribute_json, get_user_seqs, get_user_seqs_long

    data_file = os.path.join(data_dir, f"{dataset}.txt")
    item2attribute, attribute_size = get_item2attribute_json(os.path.join(data_dir, f"{dataset}_item2attributes.json"))
    user_seq, max_item, long_sequence = get_user_seqs_long(data_file)
    log_file = os.path.join(tempfile.mkdtemp(), "reference.log")  # the trainers append their losses here
    args = Namespace(**REFERENCE_ARGS, data_name=dataset, item_size=max_item + 2, mask_id=max_item + 1,
                     attribute_size=attribute_size + 1, item2attribute=item2attribute, log_file=log_file)  # fmt: skip

    def loader(data, batch_size):
        # A fresh random subset of `batches` batches: the reference's RandomSampler, cut short.
        sampler = RandomSampler(data, num_samples=min(len(data), batches * batch_size))
        return DataLoader(data, sampler=sampler, batch_size=batch_size)

    pretrain_data = PretrainDataset(args, user_seq, long_sequence)
    pretrainer = PretrainTrainer(S3RecModel(args=args), None, None, None, args)
    finetune_seq = get_user_seqs(data_file)[0]
    finetune_data = SASRecDataset(args, finetune_seq, data_type="train")
    finetuner = FinetuneTrainer(S3RecModel(args=args), loader(finetune_data, args.batch_size), None, None, args)

    def quiet(train):  # the reference prints a progress bar and its losses every epoch
        def epoch_fn(epoch):
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                train(epoch)

        return epoch_fn

    def finetune_epoch(epoch):
        finetuner.train_dataloader = loader(finetune_data, args.batch_size)
        finetuner.train(epoch)

    return {
        ("reference", "S3Rec pre-training"): (quiet(lambda epoch: pretrainer.pretrain(epoch, loader(pretrain_data, args.pre_batch_size))),
                                              -(-len(pretrain_data) // args.pre_batch_size)),
        ("reference", "S3Rec fine-tuning"): (quiet(finetune_epoch), -(-len(finetune_data) // args.batch_size)),
    }  # fmt: skip


def our_arms(dataset, data_path, pre_model_path, batches):
    """``{("ours", stage): (epoch_fn, batches_per_epoch)}`` of our S3Rec's two stages and SASRec, each in its paper setting."""
    paper = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "properties", "paper")
    stages = {
        "S3Rec pre-training": ("S3Rec", [os.path.join(paper, f"{dataset}.yaml"), os.path.join(paper, "S3Rec-pretrain.yaml")], {}),
        "S3Rec fine-tuning": ("S3Rec", paper_config_files(dataset, "S3Rec"), {"pre_model_path": pre_model_path}),
        "SASRec": ("SASRec", paper_config_files(dataset, "SASRec"), {}),
    }  # fmt: skip
    arms = {}
    for stage, (model, files, extra) in stages.items():
        trainer, train_data = build_trainer(model, dataset, dict(extra, data_path=data_path, trainer="plain"), files)
        arms[("ours", stage)] = (lambda epoch, t=trainer, d=train_data: t._train_epoch(itertools.islice(d, batches), epoch), len(train_data))
    return arms


def time_arms(arms, batches, repeats, clock):
    """Median seconds per (extrapolated) epoch of each arm, timed in turns after a warm-up round."""
    now, seconds = CLOCKS[clock], {name: [] for name in arms}
    for round_ in range(repeats + 1):
        for name, (epoch_fn, per_epoch) in arms.items():
            start = now()
            epoch_fn(round_)
            if round_ > 0:
                seconds[name].append((now() - start) * per_epoch / min(batches, per_epoch))
        print(f"round {round_} of {repeats} done", file=sys.stderr, flush=True)
    return {name: (statistics.median(values), arms[name][1]) for name, values in seconds.items()}


# The reference stage each of ours is compared with: its fine-tuning trains SASRec's network.
COMPARED_WITH = {"S3Rec pre-training": "S3Rec pre-training", "S3Rec fine-tuning": "S3Rec fine-tuning", "SASRec": "S3Rec fine-tuning"}


def markdown_table(results, command, batches, clock):
    lines = [
        f"Command: `{command}`  ",
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), run on {time.strftime('%Y-%m-%d')}; "
        f"epochs extrapolated from their first {batches} batches; "
        + ("the process's CPU seconds." if clock == "cpu" else "wall seconds."),
        "",
        "| code | stage | batches/epoch | s/epoch (median) | × the reference's |",
        "|---|---|---|---|---|",
    ]
    for (code, stage), (value, per_epoch) in results.items():
        base = results[("reference", COMPARED_WITH[stage])][0]
        lines.append(f"| {code} | {stage} | {per_epoch} | {value:.1f} | {value / base:.3f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", required=True, help="a checkout of RUCAIBox/CIKM2020-S3Rec")
    parser.add_argument("--data-dir", required=True, help="the reference's data folder (<dataset>.txt, <dataset>_item2attributes.json)")
    parser.add_argument("--dataset", default="Beauty")
    parser.add_argument("--data-path", default="dataset/", help="our converted datasets (dataset/prepare.py s3rec)")
    parser.add_argument("--pre-model-path", required=True, help="the reference's checkpoint, for our fine-tuning")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", default="cpu", choices=list(CLOCKS))
    parser.add_argument("--out", help="Markdown file to write the table into")
    parser.add_argument("--section", default="reference-epoch")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    arms = reference_arms(args.reference, args.data_dir, args.dataset, args.batches)
    arms.update(our_arms(args.dataset, args.data_path, os.path.abspath(args.pre_model_path), args.batches))
    results = time_arms(arms, args.batches, args.repeats, args.clock)
    table = markdown_table(results, "python " + shlex.join(sys.argv), args.batches, args.clock)
    print(table)
    if args.out:
        write_section(args.out, args.section, table)


if __name__ == "__main__":
    main()
