"""S3Rec (Zhou et al., "S3-Rec: Self-Supervised Learning for Sequential Recommendation with
Mutual Information Maximization", CIKM'20): RecBole's model, with clear errors and a
fine-tuning stage that loads its pre-trained checkpoint on torch >= 2.6.

Both stages are RecBole's: ``train_stage: pretrain`` (four self-supervised losses over item
attributes, masked items and segments, re-drawn with Python's ``random`` on every call, which
the SAM trainer replays for its second pass) and ``train_stage: finetune`` (loads
``pre_model_path``). ``run_recbole_sam`` runs one after the other when ``train_stage`` is not set.
"""

import os

from recbole.model.sequential_recommender.s3rec import S3Rec as RecBoleS3Rec

from recbole_sam.compat import trusted_torch_load
from recbole_sam.errors import ConfigError


class S3Rec(RecBoleS3Rec):
    """RecBole's S3Rec with input checks and a torch >= 2.6 checkpoint load."""

    def __init__(self, config, dataset):
        attribute = config["item_attribute"]
        if attribute not in dataset.field2type:
            raise ConfigError(
                f"item_attribute: dataset {config['dataset']!r} has no item field {attribute!r} "
                f"(item fields: {', '.join(dataset.item_feat.columns) if dataset.item_feat is not None else 'none'}); "
                "S3Rec pre-trains on item attributes: load one with load_col and name it in item_attribute"
            )
        if config["train_stage"] not in ("pretrain", "finetune"):
            raise ConfigError(f"train_stage: {config['train_stage']!r} is not one of pretrain, finetune")
        if config["train_stage"] == "finetune" and not os.path.isfile(str(config["pre_model_path"])):
            raise ConfigError(
                f"pre_model_path: no file {config['pre_model_path']!r} (train_stage finetune loads the pre-trained model)"
            )
        with trusted_torch_load():
            super().__init__(config, dataset)
