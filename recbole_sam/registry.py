"""Find models and trainers by name: recbole-sam's first, then RecBole's."""

import difflib
import importlib
import importlib.util
import inspect

from recbole.utils import get_model as recbole_get_model

from recbole_sam.errors import ConfigError

# Model name -> module in recbole_sam.model that defines a class of that name.
MODELS = {"SASRec": "sasrec", "CL4SRec": "cl4srec", "S3Rec": "s3rec"}


FAMILIES = ("sequential", "general", "context_aware", "knowledge_aware")


def _recbole_sequential_models():
    from recbole.model import sequential_recommender

    return sorted(name for name in dir(sequential_recommender) if name[:1].isupper())


def trainable_models():
    """dict: family -> sorted names of RecBole's models that its plain ``Trainer`` trains (and so
    SAM's), recbole-sam's own models first among the sequential ones. Imports every model."""
    import recbole.trainer
    from recbole.utils import ModelType

    families = {}
    for family in FAMILIES:
        package = importlib.import_module(f"recbole.model.{family}_recommender")
        classes = [getattr(package, name) for name in dir(package) if inspect.isclass(getattr(package, name))]
        families[family] = sorted(
            model.__name__ for model in classes
            if hasattr(model, "type") and not hasattr(recbole.trainer, f"{model.__name__}Trainer")
            and model.type not in (ModelType.KNOWLEDGE, ModelType.TRADITIONAL) and model.__name__ not in MODELS
        )
    families["sequential"] = list(MODELS) + families["sequential"]
    return {family: names for family, names in families.items() if names}


def get_model(model_name):
    """The model class called ``model_name``, in any letter case (``sasrec`` is SASRec): ours if
    we define it, else RecBole's.

    Raises:
        ConfigError: no such model, with the closest name or the sequential ones.
    """
    ours = {name.lower(): name for name in MODELS}
    if model_name.lower() in ours:
        name = ours[model_name.lower()]
        return getattr(importlib.import_module(f"recbole_sam.model.{MODELS[name]}"), name)
    module = _recbole_model_module(model_name)
    found = [value for name, value in vars(module).items() if name.lower() == model_name.lower()] if module else []
    if not found or not inspect.isclass(found[0]):
        if model_name.lower() in ("lightgbm", "xgboost"):
            return recbole_get_model(model_name)  # RecBole's exlib models: let it say what they need
        known = sorted(set(MODELS) | set(_recbole_sequential_models()))
        close = difflib.get_close_matches(model_name, known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else f"sequential models: {', '.join(known)}"
        raise ConfigError(f"model: {model_name!r} is not a recbole-sam or RecBole model; {hint} (run_recbole_sam.py --help lists all)")
    return found[0]


def _recbole_model_module(model_name):
    # RecBole names each model's module after the model in lower case. Asked directly, its
    # get_model imports its exlib package on the way to saying "no", which fails without
    # lightgbm/xgboost installed; look the module up ourselves.
    for family in FAMILIES:
        name = f"recbole.model.{family}_recommender.{model_name.lower()}"
        try:
            if importlib.util.find_spec(name):
                return importlib.import_module(name)
        except (ImportError, ValueError):  # a name with dots or other characters no module has
            continue
    return None


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
