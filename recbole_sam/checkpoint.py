"""Checkpoint handling that RecBole's trainers get wrong for us: name clashes, partial files,
torch >= 2.6, and resuming an interrupted run where it stopped.

One run id names everything a run writes: ``log/<model>/<run_id>.log``,
``log_tensorboard/<run_id>/``, ``<checkpoint_dir>/<run_id>.pth`` (the best model),
``<run_id>-last.pth`` (the state after the last finished epoch, kept while the run trains,
for ``--resume``),
``<run_id>-pretrain-<epoch>.pth`` (S3Rec's pre-training) and ``<run_id>.result.json``.
"""

import glob
import os
import random
import time
import uuid

import numpy as np
import torch
from recbole.utils import get_local_time, set_color

from recbole_sam.atomic import write_atomically
from recbole_sam.compat import trusted_torch_load
from recbole_sam.errors import ConfigError
from recbole_sam.rng import RandomDraws

# A side file (atomic.write_atomically) untouched this long belongs to a killed process.
ORPHAN_AGE_S = 3600


def new_run_id(model, dataset):
    """``<model>-<dataset>-<time>-<random>``: RecBole names by the second, so two runs started
    in the same second would share files."""
    return f"{model}-{dataset}-{get_local_time()}-{uuid.uuid4().hex[:6]}"


def last_checkpoint_path(checkpoint_dir, run_id):
    return os.path.join(checkpoint_dir, f"{run_id}-last.pth")


def result_path(checkpoint_dir, run_id):
    return os.path.join(checkpoint_dir, f"{run_id}.result.json")


def run_id_of(last_checkpoint):
    """The run id in a ``<run_id>-last.pth`` file name."""
    name = os.path.basename(str(last_checkpoint))
    return name[: -len("-last.pth")] if name.endswith("-last.pth") else None


def unfinished_runs(checkpoint_dir, model, dataset):
    """The ``-last.pth`` checkpoints of the unfinished runs of ``model`` on ``dataset``."""
    pattern = os.path.join(glob.escape(str(checkpoint_dir)), glob.escape(f"{model}-{dataset}-") + "*-last.pth")
    return [path for path in glob.glob(pattern) if not os.path.isfile(result_path(checkpoint_dir, run_id_of(path)))]


def find_resumable(checkpoint_dir, model, dataset):
    """The newest ``-last.pth`` checkpoint of an unfinished run of ``model`` on ``dataset``.

    Raises:
        ConfigError: there is none.
    """
    unfinished = unfinished_runs(checkpoint_dir, model, dataset)
    if not unfinished:
        raise ConfigError(
            f"resume: no unfinished run of {model} on {dataset} in {checkpoint_dir!r} "
            "(a run leaves <run_id>-last.pth there after its first epoch); name one with --resume_from"
        )
    return max(unfinished, key=os.path.getmtime)


def remove_orphaned_partials(checkpoint_dir, max_age_s=ORPHAN_AGE_S):
    """Delete side files that a killed process (SIGKILL) left behind; fresh ones may belong to
    a run writing right now, so only those untouched for ``max_age_s`` go.

    Returns:
        list: the removed paths.
    """
    removed = []
    for path in glob.glob(os.path.join(glob.escape(str(checkpoint_dir)), ".*.partial*")):
        try:
            if time.time() - os.path.getmtime(path) > max_age_s:
                os.remove(path)
                removed.append(path)
        except OSError:  # another process removed or renamed it first
            pass
    return removed


def capture_random_state(train_data=None):
    """Every generator the next epoch draws from: the global ones (``rng.RandomDraws``: Python's,
    NumPy's, torch's) and the training dataloader's own shuffling generator."""
    state = dict(vars(RandomDraws()))
    if getattr(train_data, "generator", None) is not None:
        state["loader"] = train_data.generator.get_state()
    return state


def restore_random_state(state, train_data=None):
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if state.get("loader") is not None and getattr(train_data, "generator", None) is not None:
        train_data.generator.set_state(state["loader"])


class SafeCheckpointMixin:
    """Mix in before a RecBole trainer class: checkpoints named by the run id and written
    atomically, reloading on torch >= 2.6, and a last-epoch checkpoint to resume from.

    ``config['run_id']`` (set by ``run_recbole_sam``) names the files; without it the trainer
    makes a fresh run id of its own.
    """

    def __init__(self, config, model):
        super().__init__(config, model)
        self.run_id = config["run_id"] or new_run_id(config["model"], config["dataset"])
        self.saved_model_file = os.path.join(self.checkpoint_dir, f"{self.run_id}.pth")
        self.last_model_file = last_checkpoint_path(self.checkpoint_dir, self.run_id)
        self._keep_last, self._resumed_random_state = False, None
        self._seconds_before, self._fit_started = 0.0, time.perf_counter()

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        target = kwargs.pop("saved_model_file", self.saved_model_file)
        parent = super(SafeCheckpointMixin, self)
        write_atomically(target, lambda path: parent._save_checkpoint(epoch, verbose=False, saved_model_file=path, **kwargs))
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {target}")

    def pretrained_model_file(self, epoch):
        """S3Rec's pre-training checkpoint after ``epoch`` (0-based): RecBole's own name,
        ``S3Rec-<dataset>-<n>.pth``, is the same for every run."""
        return os.path.join(self.checkpoint_dir, f"{self.run_id}-pretrain-{epoch + 1}.pth")

    def save_pretrained_model(self, epoch, saved_model_file=None):
        """S3Rec's pre-training checkpoints (RecBole's ``PretrainTrainer``), written atomically
        under this run's name whatever name RecBole asks for."""
        target = self.pretrained_model_file(epoch)
        parent = super(SafeCheckpointMixin, self)
        write_atomically(target, lambda path: parent.save_pretrained_model(epoch, path))
        self.saved_model_file = target

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        # S3Rec's fit() pre-trains when its model is in the pretrain stage: nothing to resume there.
        self._keep_last = saved and getattr(self.model, "train_stage", "finetune") != "pretrain"
        self._fit_started = time.perf_counter()
        if self._resumed_random_state is not None:
            restore_random_state(self._resumed_random_state, train_data)
            self._resumed_random_state = None
        self._train_data = train_data
        result = super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)
        if os.path.isfile(self.last_model_file):  # finished: nothing left to resume
            os.remove(self.last_model_file)
        return result

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        if self._keep_last and epoch_idx > self.start_epoch:
            self.save_last_checkpoint(epoch_idx - 1)  # that epoch, its validation included, is complete
        return super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)

    def save_last_checkpoint(self, epoch):
        """Everything ``resume_checkpoint`` needs to go on after ``epoch`` as if never stopped."""
        state = {
            "config": self.config,
            "run_id": self.run_id,
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": self.best_valid_score,
            "best_valid_result": self.best_valid_result,
            "best_model_file": self.saved_model_file,
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
            "valid_curve": list(getattr(self, "valid_curve", [])),
            "sam_history": dict(getattr(self, "sam_history", {})),
            "random_state": capture_random_state(getattr(self, "_train_data", None)),
            "seconds": self._seconds_before + time.perf_counter() - self._fit_started,  # of training so far
        }
        write_atomically(self.last_model_file, lambda path: torch.save(state, path, pickle_protocol=4))

    def resume_checkpoint(self, resume_file):
        """RecBole's resume (model, optimizer, epoch, early-stopping counters), plus, from a
        ``-last.pth`` checkpoint, the best result so far, the validation curve and the random
        state, so that the run ends as an uninterrupted one would."""
        with trusted_torch_load():
            super().resume_checkpoint(resume_file)
        checkpoint = torch.load(resume_file, map_location="cpu", weights_only=False)
        if "random_state" not in checkpoint:
            return  # a best-model checkpoint: RecBole's resume only
        self.best_valid_result = checkpoint["best_valid_result"]
        # The same file name in this run's checkpoint_dir, wherever the folder is now.
        self.saved_model_file = os.path.join(self.checkpoint_dir, os.path.basename(checkpoint["best_model_file"]))
        self.valid_curve = list(checkpoint["valid_curve"])
        self.sam_history = dict(checkpoint["sam_history"])
        self.last_epoch = checkpoint["epoch"]
        self._resumed_random_state = checkpoint["random_state"]  # restored when fit() starts
        self._seconds_before = checkpoint.get("seconds", 0.0)

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        with trusted_torch_load():
            return super().evaluate(eval_data, load_best_model, model_file, show_progress)
