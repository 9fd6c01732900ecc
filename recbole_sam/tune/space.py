"""From parsed hyperparameters to Tune: sampling domains, search algorithms, schedulers."""

from recbole_sam.errors import ConfigError

SEARCHES = ("random", "grid", "optuna", "hyperopt")
SCHEDULERS = ("none", "asha", "median")
# ASHA keeps the best 1/REDUCTION_FACTOR of the trials at each rung (epochs 1, 2, 4, ...):
# with a handful of trials Ray's default of 4 would keep almost none past the first rungs.
REDUCTION_FACTOR = 2


def tune_domain(param, grid=False):
    """Tune's sampling domain for one ``Param``.

    ``loguniform`` low, high are natural-log exponents (RecBole's meaning): Tune gets
    ``e^low``, ``e^high``. A ``quniform`` of whole numbers draws integers (``qrandint``), so
    that ``hidden_size quniform 32,128,32`` gives 64, not 64.0. With ``grid``, a ``choice``
    becomes a grid axis (every value once).
    """
    from ray import tune

    if param.kind == "choice":
        return tune.grid_search(list(param.values)) if grid else tune.choice(list(param.values))
    low, high = param.bounds
    if param.kind == "uniform":
        return tune.uniform(low, high)
    if param.kind == "loguniform":
        return tune.loguniform(low, high)
    if param.is_integer:
        return tune.qrandint(int(low), int(high), int(param.values[2]))
    return tune.quniform(low, high, param.values[2])


def param_space(params, search):
    """dict: ``name -> domain`` for ``Tuner(param_space=...)``."""
    return {param.name: tune_domain(param, grid=search == "grid") for param in params}


def check_search(search, params):
    """Refuse an unknown search, an uninstalled one, or a grid over nothing.

    Raises:
        ConfigError: naming ``search`` and what is allowed.
    """
    if search not in SEARCHES:
        raise ConfigError(f"search: {search!r} is not one of {', '.join(SEARCHES)}")
    if search == "grid" and not any(param.kind == "choice" for param in params):
        raise ConfigError("search: grid needs at least one 'choice' line (other distributions are sampled)")
    if search in ("optuna", "hyperopt"):
        try:
            __import__(search)
        except ImportError:
            raise ConfigError(f'search: {search} is not installed; pip install "recbole-sam[{search}]"') from None


def search_algorithm(search, seed, max_concurrent=None):
    """Tune's search algorithm, seeded. The metric and mode come from ``TuneConfig`` (Tune
    refuses them twice); ``max_concurrent`` limits the random/grid generator."""
    if search == "optuna":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(sampler=optuna.samplers.TPESampler(seed=seed))
    if search == "hyperopt":
        from ray.tune.search.hyperopt import HyperOptSearch

        return HyperOptSearch(random_state_seed=seed)
    from ray.tune.search.basic_variant import BasicVariantGenerator

    return BasicVariantGenerator(random_state=seed, max_concurrent=max_concurrent or 0)


def check_scheduler(scheduler):
    """Raises ConfigError for a scheduler that is not one of ``SCHEDULERS``."""
    if scheduler not in SCHEDULERS:
        raise ConfigError(f"scheduler: {scheduler!r} is not one of {', '.join(SCHEDULERS)}")


def build_scheduler(scheduler, max_t, grace_period=1):
    """A trial scheduler over validations (one Tune iteration per validation). The metric
    and mode come from ``TuneConfig``.

    Args:
        scheduler (str): ``none``, ``asha`` or ``median``.
        max_t (int): validations of a full trial (``epochs / eval_step``).
        grace_period (int): validations every trial gets before it can be stopped.

    Returns:
        TrialScheduler or None: ``None`` runs every trial to its end (Tune's FIFO).
    """
    check_scheduler(scheduler)
    if scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        return ASHAScheduler(
            time_attr="training_iteration",
            max_t=max(max_t, 1),
            grace_period=max(min(grace_period, max_t), 1),
            reduction_factor=REDUCTION_FACTOR,
        )
    if scheduler == "median":
        from ray.tune.schedulers import MedianStoppingRule

        return MedianStoppingRule(
            time_attr="training_iteration", grace_period=grace_period, min_samples_required=2
        )
    return None
