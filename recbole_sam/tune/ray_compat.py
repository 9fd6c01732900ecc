"""The one place that knows how Ray's API differs across versions.

recbole-sam is tested on the Ray that RecBole 1.2.1 pins (``ray<=2.6.3``) and written to run
on current Ray too. What changed between them and matters here:

- reporting from a trial: 2.6.3 has ``ray.air.session.report(dict)`` (``tune.report`` there
  is the old ``**kwargs`` API); 2.7-2.x have ``ray.train.report(dict)``; current Ray has
  ``ray.tune.report(dict)`` and warns about ``ray.train.report`` inside Tune.
- where results go: ``RunConfig(local_dir=...)`` is gone, ``storage_path`` stays; options
  such as ``log_to_file`` come and go, so ``RunConfig`` gets only those it accepts.
- a trial's folder: ``session.get_trial_dir()`` against ``tune.get_context().get_trial_dir()``.

Nothing here is imported by ``import recbole_sam``: Ray is imported inside the functions.
"""

import inspect
import os
import socket
import warnings

from recbole_sam.errors import ConfigError

INSTALL = 'pip install "recbole-sam[tune]"'


def require_ray():
    """Import Ray Tune, or say in one line how to install it.

    Returns:
        module: ``ray``.

    Raises:
        ConfigError: Ray Tune (or pyarrow, which it needs) is missing.
    """
    try:
        with warnings.catch_warnings():  # Ray 2.6.3 imports setuptools' deprecated pkg_resources
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            import ray
            import ray.tune  # noqa: F401  (pulls in pyarrow and pandas)
    except ImportError as error:
        raise ConfigError(f"tune: Ray Tune is not installed ({error.name or error}); {INSTALL}") from None
    return ray


def report(metrics):
    """Report one result of the running trial to Tune, on any Ray version."""
    import ray.tune

    if _takes_dict(getattr(ray.tune, "report", None)):
        return ray.tune.report(metrics)  # current Ray
    try:
        from ray.air import session  # 2.0-2.6
    except ImportError:
        session = None
    if session is not None and hasattr(session, "report"):
        return session.report(metrics)
    import ray.train  # 2.7 and later, before tune.report took a dict

    return ray.train.report(metrics)


def _takes_dict(function):
    # 2.6.3's tune.report(_metric=None, **kwargs) takes keywords; the new one report(metrics, *, ...).
    if function is None:
        return False
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return False
    return bool(parameters) and parameters[0].name == "metrics" and parameters[0].kind is not parameters[0].VAR_KEYWORD


def trial_dir():
    """str: the running trial's own folder."""
    import ray.tune

    if hasattr(ray.tune, "get_context"):
        return ray.tune.get_context().get_trial_dir()
    from ray.air import session

    return session.get_trial_dir()


def run_config(storage_path, name, callbacks=None, verbose=0):
    """Tune's ``RunConfig`` with the results under ``storage_path/name``, trial output in files.

    Args:
        storage_path (str): an absolute folder.
        name (str): the search's name: its folder under ``storage_path``.
        callbacks (list, optional): Tune callbacks.
        verbose (int): Ray's own progress output (0: none; recbole-sam prints its own lines).
    """
    config_class = _run_config_class()
    accepted = inspect.signature(config_class).parameters
    options = {"name": name, "verbose": verbose, "log_to_file": True, "callbacks": list(callbacks or [])}
    options = {key: value for key, value in options.items() if key in accepted}
    if "storage_path" in accepted:
        options["storage_path"] = storage_path
    else:  # Ray before 2.5
        options["local_dir"] = storage_path
    return config_class(**options)


def _run_config_class():
    import ray.tune

    if hasattr(ray.tune, "RunConfig"):  # 2.7 and later
        return ray.tune.RunConfig
    from ray.air import RunConfig

    return RunConfig


def trials(result_grid):
    """list of dict: every trial of a finished (or interrupted) ``Tuner.fit``, those that never
    reported included: ``trial_id``, ``status``, ``config``, ``last`` (last result), ``error``.

    ``ResultGrid`` lists results, and a trial that never reported has none to say who it was;
    Tune keeps the trials themselves in the grid's ``ExperimentAnalysis``, under the same
    attribute in 2.6.3 and in current Ray.
    """
    analysis = getattr(result_grid, "_experiment_analysis", None)
    return [
        {
            "trial_id": trial.trial_id,
            "status": trial.status,
            "config": dict(trial.config or {}),
            "last": dict(trial.last_result or {}),
            "error": getattr(trial, "error_file", None) if trial.status == "ERROR" else None,
        }
        for trial in getattr(analysis, "trials", None) or []
    ]


def result_path(result):
    """str: the trial folder of a ``Result`` (``log_dir`` in 2.6.3, ``path`` later)."""
    path = getattr(result, "path", None) or getattr(result, "log_dir", None)
    return str(path) if path is not None else None


def check_address(address, timeout=5.0):
    """Fail fast on an address that nothing listens on, instead of Ray's long retries.

    Raises:
        ConfigError: ``host:port`` (or ``ray://host:port``) that refuses or times out.
    """
    if address in (None, "", "auto", "local"):
        return
    host_port = address.split("://", 1)[-1]
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"address: {address!r} is not host:port, ray://host:port or auto")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as error:
        raise ConfigError(f"address: cannot reach a Ray cluster at {address} ({error.strerror or error})") from None


def connect(address=None, num_cpus=None):
    """Start a local Ray with ``num_cpus`` CPUs, or join the cluster at ``address`` (default:
    the ``RAY_ADDRESS`` environment variable, as Ray itself reads it).

    Returns:
        bool: True if this call started Ray (the caller shuts it down), False if it was running.

    Raises:
        ConfigError: an unreachable address.
    """
    ray = require_ray()
    address = address or os.environ.get("RAY_ADDRESS")
    check_address(address)
    if ray.is_initialized():
        return False
    options = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    try:
        if address:
            ray.init(address=address, **options)
        else:
            # Explicit CPUs: Ray's own count ignores cgroup limits on some machines, and a
            # GPU is never assumed (num_gpus from Ray's detection, which finds none on a CPU box).
            ray.init(num_cpus=num_cpus, **options)
    except ConnectionError as error:
        raise ConfigError(f"address: cannot join a Ray cluster at {address} ({error})") from None
    return True


def cluster_resources():
    """tuple: ``(cpus, gpus)`` of the connected cluster."""
    import ray

    resources = ray.cluster_resources()
    return resources.get("CPU", 0), resources.get("GPU", 0)
