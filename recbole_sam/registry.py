"""Find models and trainers by name: recbole-sam's first, then RecBole's."""

import importlib
import importlib.util

from recbole.utils import get_model as recbole_get_model

from recbole_sam.errors import ConfigError

# Model name -> module in recbole_sam.model that defines a class of that name.
MODELS = {"SASRec": "sasrec", "CL4SRec": "cl4srec", "S3Rec": "s3rec"}


def _recbole_sequential_models():
    from recbole.model import sequential_recommender

    return sorted(name for name in dir(sequential_recommender) if name[:1].isupper())


def get_model(model_name):
    """The model class called ``model_name``: ours if we define it, else RecBole's.

    Raises:
        ConfigError: no such model, with the known names.
    """
    if model_name in MODELS:
        module = importlib.import_module(f"recbole_sam.model.{MODELS[model_name]}")
        return getattr(module, model_name)
    if not _is_recbole_model(model_name):
        known = ", ".join(sorted(set(MODELS) | set(_recbole_sequential_models())))
        raise ConfigError(f"model: {model_name!r} is not a recbole-sam or RecBole model; sequential models: {known}")
    return recbole_get_model(model_name)


def _is_recbole_model(model_name):
    # Asked directly, RecBole's get_model imports its exlib package on the way to saying "no",
    # which fails without lightgbm/xgboost installed; look the module up ourselves first.
    torch_models = ("general", "context_aware", "sequential", "knowledge_aware")
    for kind in torch_models:
        if importlib.util.find_spec(f"recbole.model.{kind}_recommender.{model_name.lower()}"):
            return True
    return model_name.lower() in ("lightgbm", "xgboost")


def get_trainer(config):
    """The trainer class for ``config['trainer']`` (sam or plain) and ``config['model']``.

    Raises:
        ConfigError: the model needs a RecBole trainer that has no SAM version here.
    """
    from recbole.utils import get_trainer as recbole_get_trainer

    from recbole_sam import trainer as trainers

    special = {"S3Rec": (trainers.SAMS3RecTrainer, trainers.PlainS3RecTrainer)}
    model = config["model"]
    if model in special:
        # S3Rec trains in two stages; sam_stages says which of them use SAM.
        use_sam = config["trainer"] == "sam" and config["train_stage"] in config["sam_stages"]
        return special[model][0 if use_sam else 1]
    recbole_trainer = recbole_get_trainer(config["MODEL_TYPE"], model)
    if recbole_trainer.__name__ != "Trainer":
        raise ConfigError(
            f"model: {model!r} needs RecBole's {recbole_trainer.__name__}, which recbole-sam does not wrap; "
            f"supported: models trained by RecBole's Trainer, and {', '.join(special)}"
        )
    return trainers.SAMTrainer if config["trainer"] == "sam" else trainers.PlainTrainer
