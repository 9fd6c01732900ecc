"""Checkpoint handling that RecBole's trainers get wrong for us: name clashes, partial files, torch >= 2.6."""

import os
import uuid

from recbole.utils import get_local_time, set_color

from recbole_sam.atomic import write_atomically
from recbole_sam.compat import trusted_torch_load


def unique_checkpoint_path(checkpoint_dir, model_name):
    """``<dir>/<model>-<time>-<random>.pth``: RecBole names by the second, so two runs started
    in the same second would overwrite each other's file."""
    return os.path.join(checkpoint_dir, f"{model_name}-{get_local_time()}-{uuid.uuid4().hex[:8]}.pth")


class SafeCheckpointMixin:
    """Mix in before a RecBole trainer class: unique checkpoint names, atomic writes, and
    reloading (best model, resume) that works on torch >= 2.6."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.saved_model_file = unique_checkpoint_path(self.checkpoint_dir, config["model"])

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        target = kwargs.pop("saved_model_file", self.saved_model_file)
        parent = super(SafeCheckpointMixin, self)
        write_atomically(target, lambda path: parent._save_checkpoint(epoch, verbose=False, saved_model_file=path, **kwargs))
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {target}")

    def save_pretrained_model(self, epoch, saved_model_file):
        """S3Rec's pre-training checkpoints (RecBole's ``PretrainTrainer``), written atomically."""
        parent = super(SafeCheckpointMixin, self)
        write_atomically(saved_model_file, lambda path: parent.save_pretrained_model(epoch, path))
        self.saved_model_file = saved_model_file

    def resume_checkpoint(self, resume_file):
        with trusted_torch_load():
            super().resume_checkpoint(resume_file)

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        with trusted_torch_load():
            return super().evaluate(eval_data, load_best_model, model_file, show_progress)
