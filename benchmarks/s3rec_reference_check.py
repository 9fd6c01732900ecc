"""Test metrics of S3Rec started from the S3Rec authors' released checkpoint against S3Rec from
scratch: before any fine-tuning step, and after a few fine-tuning batches (plain Adam, CE on
RecBole's prefix samples, `properties/paper/Beauty.yaml` otherwise). A check that the reference
checkpoint is read right (docs/paper_setting.md, "A check on Beauty"), not a result.

    python benchmarks/s3rec_reference_check.py --checkpoint ../shared/checkpoints/Beauty-epochs-150.pt \
        reference-left:finetune:left:50 reference-right:finetune:right:0 scratch:pretrain:left:50

Each ARM is NAME:STAGE:PADDING_SIDE:BATCHES; STAGE finetune loads the checkpoint, pretrain
builds the model from scratch and switches it to fine-tuning.
"""

import argparse

import torch

import recbole_sam  # noqa: F401  (the compatibility fixes)
from recbole_sam.config import SAMConfig
from recbole_sam.run import prepare


def rounded(result):
    return {key: round(float(value), 4) for key, value in result.items()}


def check(name, stage, padding_side, batches, checkpoint, data_path):
    settings = dict(train_stage=stage, pre_model_path=checkpoint, pre_model_format="reference", padding_side=padding_side,
                    loss_type="CE", train_scheme="prefix", neg_exclude="input", train_neg_sample_args=None,
                    data_path=data_path, threads=1, show_progress=False, state="WARNING", seed=2,
                    eval_batch_size=4096, train_batch_size=256)
    config = SAMConfig("S3Rec", "Beauty", config_file_list=["properties/paper/Beauty.yaml"], config_dict=settings)
    trainer, train_data, _, test_data = prepare(config)
    model = trainer.model
    if stage == "pretrain":  # from scratch: the same model, scored as fine-tuning scores it
        model.train_stage = "finetune"
        model.loss_fct = torch.nn.CrossEntropyLoss()
    print(name, "before", rounded(trainer.evaluate(test_data, load_best_model=False, show_progress=False)), flush=True)
    if batches:
        model.train()
        optimizer = torch.optim.Adam(model.parameters(), lr=0.001)
        for _, batch in zip(range(batches), train_data):
            optimizer.zero_grad()
            model.calculate_loss(batch.to(config["device"])).backward()
            optimizer.step()
        after = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
        print(name, f"after {batches} batches", rounded(after), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="the reference's Beauty-epochs-150.pt")
    parser.add_argument("--data-path", default="dataset/", help="folder holding the converted Beauty")
    parser.add_argument("arms", nargs="+", metavar="NAME:STAGE:PADDING_SIDE:BATCHES")
    args = parser.parse_args()
    for arm in args.arms:
        name, stage, side, batches = arm.split(":")
        check(name, stage, side, int(batches), args.checkpoint, args.data_path)


if __name__ == "__main__":
    main()
