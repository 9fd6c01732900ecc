"""A progress view that stays readable: one line per finished trial, instead of Ray's
refreshing status tables and every trial's log. Ray is imported inside the factory."""


def format_params(params):
    """``rho=0.0312 learning_rate=0.002``: short numbers, in the space's order."""
    return " ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}" for key, value in params.items())


def trial_line(done, total, trial_id, params, last, metric_label, ended):
    """str: ``[3/8] 1a2b_00002 asha stopped it: rho=0.03 -> best ndcg@10 0.0412 (epoch 1, 2 validations)``."""
    best = last.get("best_valid_score")
    score = "no validation" if best is None else f"best {metric_label} {best:.4f} (epoch {last.get('best_epoch')}"
    if best is not None:
        score += f", {last.get('training_iteration', 0)} validations)"
    return f"[{done}/{total}] {trial_id} {ended}: {format_params(params)} -> {score}"


def progress_callback(total, metric_label, validations, scheduler, echo=print):
    """A Tune ``Callback`` that echoes ``trial_line`` as each trial ends.

    Args:
        total (int or str): trials expected (shown as ``[done/total]``).
        metric_label (str): the objective's name, e.g. ``ndcg@10``.
        validations (int): validations of a full trial, to tell "all epochs" from a scheduler stop.
        scheduler (str): the scheduler's name, for trials it stopped.
        echo (callable): where lines go.
    """
    from ray.tune import Callback

    from recbole_sam.tune.results import ended_by

    class TrialLines(Callback):
        def __init__(self):
            self.done = 0

        def _line(self, trial, status, error=None):
            self.done += 1
            record = {"last": dict(trial.last_result or {}, done=True), "status": status, "error": error}
            ended = ended_by(record, validations, scheduler)
            echo(trial_line(self.done, total, trial.trial_id, dict(trial.config), record["last"], metric_label, ended))

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._line(trial, "TERMINATED")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._line(trial, "ERROR", error="error")

    return TrialLines()
