"""RecBole trainers that train with Sharpness-Aware Minimization.

``SAMTrainer(config, model)`` is a drop-in replacement for ``recbole.trainer.Trainer``: fit,
evaluate, checkpoints, early stopping, logging and tensorboard are RecBole's. Only the batch
step changes, and RecBole's batch loop is left as it is (see ``SAMStepMixin._sam_loss``).
"""

import math

from recbole.trainer import S3RecTrainer, Trainer
from recbole.utils import set_color

from recbole_sam.checkpoint import SafeCheckpointMixin
from recbole_sam.errors import ConfigError
from recbole_sam.evaluation import HistoryMaskedEvalMixin
from recbole_sam.optim import build_sam_optimizer
from recbole_sam.rng import DataDraws, RandomDraws
from recbole_sam.trajectory import TrajectoryLoss
from recbole_sam.variants import helen_row_scale, item_embedding_table, parameter_groups, training_item_counts


def _total(loss):
    """RecBole models return one loss or a tuple of parts that RecBole sums."""
    return sum(loss) if isinstance(loss, tuple) else loss


def _value_at_theta_gradient_at_ascent(at_theta, at_ascent):
    # A tensor whose value is L(Θ) (what RecBole logs as the train loss) and whose gradient is
    # ∇L(Θ + Δ) (what RecBole back-propagates before calling optimizer.step()).
    if isinstance(at_theta, tuple):
        return tuple(_value_at_theta_gradient_at_ascent(a, b) for a, b in zip(at_theta, at_ascent))
    return at_ascent + (at_theta - at_ascent).detach()


class SAMStepMixin:
    """Turns a RecBole trainer's batch step into a SAM step. Mix in before the trainer class.

    Per epoch it also logs the mean sharpness proxy L(Θ+Δ) − L(Θ) and the mean ‖Δ‖₂ over the
    ascent steps, and keeps them in ``self.sam_history[epoch]``.

    The recommender variants: ``sam_params`` chooses what the ascent perturbs (parameter
    groups from ``recbole_sam.variants``); ``sam_variant: helen`` scales the item embedding's
    rows by training frequency, set when training starts; ``sam_variant: saf`` takes no ascent
    and adds the trajectory loss (``recbole_sam.trajectory``) to each batch's loss, its mean R
    logged as ``trajectory`` in ``sam_history``.
    """

    def __init__(self, config, model):
        self.sam_history = {}
        self._ascents = []
        super().__init__(config, model)
        self.trajectory = None
        if config["sam_variant"] == "saf":
            self.trajectory = TrajectoryLoss(model, config["saf_weight"], config["saf_lag"])
            self.optimizer.attached["trajectory"] = self.trajectory  # its past weights resume with the optimizer
        self._helen_table = None
        if config["sam_variant"] == "helen":
            if (config["sam_params"] or "all") != "all":
                raise ConfigError(
                    f"sam_params: {config['sam_params']!r} leaves the item embedding unperturbed, whose rows "
                    "sam_variant: helen scales; allowed with helen: all"
                )
            self._helen_table = item_embedding_table(model)

    def _build_optimizer(self, **kwargs):
        params = kwargs.pop("params", None)
        if params is None:
            params = parameter_groups(self.model, self.config["sam_params"] or "all")
        return build_sam_optimizer(
            params,
            self.config,
            learner=kwargs.pop("learner", self.learner),
            learning_rate=kwargs.pop("learning_rate", self.learning_rate),
            weight_decay=kwargs.pop("weight_decay", self.weight_decay),
        )

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        self._ascents = []
        self._set_rho(epoch_idx)
        if self._helen_table is not None and self._helen_table not in self.optimizer.row_scales:
            self._set_helen_scale(train_data._dataset)
        loss_func = loss_func or self.model.calculate_loss
        if self.trajectory is not None:
            self.trajectory.start_epoch()
            loss_func = self.trajectory.wrap(loss_func)
        else:
            loss_func = self._sam_loss(loss_func)
        total_loss = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        if self.trajectory is not None:
            self._log_trajectory(epoch_idx)
            self.trajectory.end_epoch()
        self._log_sharpness(epoch_idx)
        return total_loss

    def _set_helen_scale(self, dataset):
        """Helen's radius factor per item-embedding row, from the training split's item counts."""
        counts = training_item_counts(dataset)
        scale = helen_row_scale(counts, self.config["helen_bound"], rows=self._helen_table.shape[0])
        self.optimizer.set_row_scale(self._helen_table, scale)

    def _sam_loss(self, loss_func):
        """Wrap ``loss_func`` so that RecBole's unchanged loop takes SAM steps.

        RecBole's loop computes ``loss_func(batch)``, back-propagates it, clips the gradient
        (``clip_grad_norm``) and calls ``optimizer.step()``. On an ascent step the wrapper runs
        the first pass itself, moves the weights to Θ + Δ and returns the second pass's loss,
        so the clipping applies to the second pass only and ``optimizer.step()`` finishes the
        SAM step. On the other steps (``sam_interval`` > 1) it is ``loss_func`` unchanged.
        """

        def sam_loss(interaction):
            if not self.optimizer.ascent_due():
                return loss_func(interaction)
            mode, draws = self.config["sam_second_pass_draws"], RandomDraws()
            self.model.data_draws = DataDraws() if mode == "fresh_dropout" else None
            try:
                at_theta = loss_func(interaction)
                _total(at_theta).backward()
                self.optimizer.first_step(zero_grad=True)
                if mode == "replay":
                    draws.restore()  # same dropout masks, negatives and augmentations in both passes
                elif mode == "fresh_dropout":
                    self.model.data_draws.replay()  # same negatives and augmentations, new dropout
                at_ascent = loss_func(interaction)
            finally:
                self.model.data_draws = None
            sharpness = (_total(at_ascent) - _total(at_theta)).item()
            self._ascents.append((sharpness, self.optimizer.last_ascent_norm))
            return _value_at_theta_gradient_at_ascent(at_theta, at_ascent)

        return sam_loss

    def _set_rho(self, epoch_idx):
        """``rho_schedule``: constant, or rho growing from ~0 to ``rho`` over the epochs
        (linear, or cosine: slow start and end), the paper's suggested future work."""
        schedule, rho = self.config["rho_schedule"] or "constant", self.config["rho"]
        progress = min(1.0, (epoch_idx + 1) / max(self.epochs, 1))
        if schedule == "linear":
            rho = rho * progress
        elif schedule == "cosine":
            rho = rho * (1 - math.cos(math.pi * progress)) / 2
        for group in self.optimizer.param_groups:
            group["rho"] = rho

    def _log_trajectory(self, epoch_idx):
        if not self.trajectory.values:
            return
        value = sum(self.trajectory.values) / len(self.trajectory.values)
        self.sam_history.setdefault(epoch_idx, {})["trajectory"] = value
        self.logger.info(set_color(f"epoch {epoch_idx} SAF", "green") + f": mean trajectory loss R {value:.6f}")
        self.tensorboard.add_scalar("SAM/trajectory", value, epoch_idx)

    def _log_sharpness(self, epoch_idx):
        if not self._ascents:
            return
        sharpness, norm = (sum(column) / len(self._ascents) for column in zip(*self._ascents))
        self.sam_history.setdefault(epoch_idx, {}).update(
            {"sharpness": sharpness, "ascent_norm": norm, "ascents": len(self._ascents)}
        )
        self.logger.info(
            set_color(f"epoch {epoch_idx} SAM", "green")
            + f": mean L(Θ+Δ)-L(Θ) {sharpness:.6f}, mean ‖Δ‖ {norm:.6f}, ascents {len(self._ascents)}"
        )
        self.tensorboard.add_scalar("SAM/sharpness", sharpness, epoch_idx)
        self.tensorboard.add_scalar("SAM/ascent_norm", norm, epoch_idx)


class RunHistoryMixin:
    """Keeps what a run record needs: one entry per validation (``self.valid_curve``), and
    ``run_summary()`` with the best epoch, the stopping epoch and whether the epoch cap was hit.
    Mix in first, so that an entry also sees the SAM statistics of its epoch."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.valid_curve = []
        self.last_epoch = None
        self._last_train_loss = None

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        loss = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        self.last_epoch, self._last_train_loss = epoch_idx, float(_total(loss))
        return loss

    def _valid_epoch(self, valid_data, show_progress=False):
        score, result = super()._valid_epoch(valid_data, show_progress=show_progress)
        entry = {"epoch": self.last_epoch, "train_loss": self._last_train_loss, "valid_score": float(score)}
        entry.update({key: float(value) for key, value in result.items()})
        entry.update(getattr(self, "sam_history", {}).get(self.last_epoch, {}))
        self.valid_curve.append(entry)
        return score, result

    def run_summary(self):
        """dict: ``curve`` (one dict per validation), ``best_epoch``, ``stopping_epoch`` (the last
        trained), ``epochs`` (the cap), ``hit_cap`` (trained to the cap, not stopped early)."""
        best_epoch = None
        if self.valid_curve:
            # RecBole's early_stopping keeps the later of equal scores (value >= best).
            sign = 1 if self.valid_metric_bigger else -1
            best = max(sign * entry["valid_score"] for entry in self.valid_curve)
            best_epoch = [entry["epoch"] for entry in self.valid_curve if sign * entry["valid_score"] == best][-1]
        stopped_early = self.cur_step > self.stopping_step
        return {
            "curve": list(self.valid_curve),
            "best_epoch": best_epoch,
            "stopping_epoch": self.last_epoch,
            "epochs": self.epochs,
            "hit_cap": self.last_epoch is not None and not stopped_early and self.last_epoch + 1 >= self.epochs,
        }


class PlainTrainer(RunHistoryMixin, HistoryMaskedEvalMixin, SafeCheckpointMixin, Trainer):
    """RecBole's ``Trainer`` with safe checkpoints; training itself is unchanged."""


class SAMTrainer(RunHistoryMixin, SAMStepMixin, HistoryMaskedEvalMixin, SafeCheckpointMixin, Trainer):
    """RecBole's ``Trainer`` training with SAM, ASAM or LookSAM (property ``sam_variant``)."""


class PlainS3RecTrainer(RunHistoryMixin, HistoryMaskedEvalMixin, SafeCheckpointMixin, S3RecTrainer):
    """RecBole's ``S3RecTrainer`` with safe checkpoints."""


class SAMS3RecTrainer(RunHistoryMixin, SAMStepMixin, HistoryMaskedEvalMixin, SafeCheckpointMixin, S3RecTrainer):
    """RecBole's ``S3RecTrainer`` (pre-training and fine-tuning) training with SAM."""


