"""Run many independent jobs as Ray tasks, N at once: the experiment grids' parallel engine
(``run_experiments.py``, the verdict and the ablation).

Locally, Ray gets exactly ``workers x cpus_per_task`` CPUs, so N jobs run at once; on a
cluster (``address``), at most N are in flight and the cluster places them. Results come back
in the order jobs finish, to a callback in this process, so the caller writes each record as
soon as it exists: an interrupted grid keeps every finished run. The callback may hand back
more jobs (the verdict's SAM runs, once rho* is known).
"""

import os
import time

from recbole_sam.errors import ConfigError
from recbole_sam.tune import ray_compat

# Ray's raylet starts its worker processes at this niceness (its default: 15, below every
# other job of a busy machine); a local Ray started here gives them the caller's own.
NICENESS_VARIABLE = "RAY_worker_niceness"


def start_ray(address=None, num_cpus=None):
    """``ray_compat.connect``, with the workers of a local Ray at the caller's priority.

    Returns:
        bool: True if this call started Ray (the caller shuts it down).
    """
    os.environ.setdefault(NICENESS_VARIABLE, str(os.nice(0)))
    return ray_compat.connect(address, num_cpus=num_cpus)


def gpus_per_task(total_gpus, workers):
    """float: each of ``workers`` jobs' share of the cluster's GPUs (at most one each), 0 without GPU."""
    return min(1.0, total_gpus / workers) if total_gpus else 0.0


def _result(ray, ref):
    """``ray.get``, with a job's own ``ConfigError`` (bad input) re-raised as itself: one clean line."""
    from ray.exceptions import RayTaskError

    try:
        return ray.get(ref)
    except RayTaskError as error:
        cause = getattr(error, "cause", None)
        if isinstance(cause, (ConfigError, KeyboardInterrupt)):
            raise cause from None
        raise


def run_tasks(function, jobs, on_done, workers, address=None, cpus_per_task=1, on_error=None, deadline=None, order=None):
    """Call ``function(*job)`` for every job as a Ray task, at most ``workers`` at a time.

    Args:
        function (callable): a picklable module-level function.
        jobs (list of tuple): its arguments, one tuple per job.
        on_done (callable): ``on_done(index, result)``, called here as each job finishes; it
            may return a list of more jobs, queued after the others (their indices follow on).
        workers (int): jobs at once.
        address (str, optional): a Ray cluster to join; default a local Ray.
        cpus_per_task (int): CPUs each job reserves (and should use as threads).
        on_error (callable, optional): ``on_error(index, error)`` for a job's error other than
            bad input, after which the others go on; default: the error ends the whole run.
        deadline (float, optional): a ``time.time()`` after which no job starts; a minute
            later the jobs still running are cancelled and this returns.
        order (callable, optional): ``order(index)``, a sort key: of the jobs waiting, the
            lowest starts first (default: in the order given).

    Raises:
        ConfigError: a job's bad input, or a cluster without ``cpus_per_task`` CPUs on a node.
        Exception: a job's other errors (without ``on_error``); the jobs still running are
            cancelled first.
    """
    started = start_ray(address, num_cpus=workers * cpus_per_task)
    import ray

    try:
        cpus, gpus = ray_compat.cluster_resources()
        if cpus_per_task > cpus:
            raise ConfigError(f"threads: {cpus_per_task} per run is more than the {cpus:g} CPUs Ray has")
        task = ray.remote(function).options(
            num_cpus=cpus_per_task, num_gpus=gpus_per_task(gpus, workers), max_retries=0
        )
        _drain(ray, task, list(jobs), on_done, workers, on_error, deadline, order)
    finally:
        if started:
            ray.shutdown()


GRACE_S = 60  # how long running jobs may go on after the deadline


def _drain(ray, task, jobs, on_done, workers, on_error, deadline, order):
    pending, queue = {}, sorted(range(len(jobs)), key=order)
    try:
        while queue or pending:
            late = deadline is not None and time.time() > deadline
            while queue and len(pending) < workers and not late:
                index = queue.pop(0)
                pending[task.remote(*jobs[index])] = index
            if not pending:
                return
            if late and time.time() > deadline + GRACE_S:
                raise TimeoutError  # cancels the jobs still running, below
            done, _ = ray.wait(list(pending), num_returns=1, timeout=None if deadline is None else 10)
            for ref in done:
                index = pending.pop(ref)
                try:
                    result = _result(ray, ref)
                except (ConfigError, KeyboardInterrupt):
                    raise
                except Exception as error:
                    if on_error is None:
                        raise
                    on_error(index, error)
                    continue
                more = on_done(index, result) or []
                queue = sorted([*queue, *range(len(jobs), len(jobs) + len(more))], key=order)
                jobs += more
    except TimeoutError:
        for ref in pending:
            ray.cancel(ref, force=True)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
