"""Where recbole-sam's YAML defaults live, and the property file beside a converted dataset."""

from pathlib import Path


def properties_dir():
    """The folder with our YAML defaults: ``recbole_sam/properties`` when installed from a wheel,
    ``properties/`` beside the package in a checkout."""
    package = Path(__file__).resolve().parent
    # The wheel's own folder first: beside an installed package, site-packages/properties may be
    # another distribution's.
    for candidate in (package / "properties", package.parent / "properties"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("recbole-sam's properties/ folder is missing from the installation")


def dataset_properties_file(data_path, dataset):
    """``<data_path>/<dataset>/<dataset>.yaml``: the property file ``dataset/prepare.py`` writes
    beside the atomic files, so that a converted dataset needs no hand-written YAML."""
    return Path(str(data_path)) / dataset / f"{dataset}.yaml"
