"""Run many independent jobs as Ray tasks, N at once: the experiment grids' parallel engine.

Locally, Ray gets exactly ``workers x cpus_per_task`` CPUs, so N jobs run at once; on a
cluster (``address``), at most N are in flight and the cluster places them. Results come back
in the order jobs finish, to a callback in this process, so the caller writes each record as
soon as it exists: an interrupted grid keeps every finished run.
"""

from recbole_sam.errors import ConfigError
from recbole_sam.tune import ray_compat


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


def run_tasks(function, jobs, on_done, workers, address=None, cpus_per_task=1):
    """Call ``function(*job)`` for every job as a Ray task, at most ``workers`` at a time.

    Args:
        function (callable): a picklable module-level function.
        jobs (list of tuple): its arguments, one tuple per job.
        on_done (callable): ``on_done(index, result)``, called here as each job finishes.
        workers (int): jobs at once.
        address (str, optional): a Ray cluster to join; default a local Ray.
        cpus_per_task (int): CPUs each job reserves (and should use as threads).

    Raises:
        ConfigError: a job's bad input, or a cluster without ``cpus_per_task`` CPUs on a node.
        Exception: a job's other errors; the jobs still running are cancelled first.
    """
    started = ray_compat.connect(address, num_cpus=workers * cpus_per_task)
    import ray

    try:
        cpus, gpus = ray_compat.cluster_resources()
        if cpus_per_task > cpus:
            raise ConfigError(f"threads: {cpus_per_task} per run is more than the {cpus:g} CPUs Ray has")
        task = ray.remote(function).options(
            num_cpus=cpus_per_task, num_gpus=gpus_per_task(gpus, workers), max_retries=0
        )
        _drain(ray, task, list(enumerate(jobs)), on_done, workers)
    finally:
        if started:
            ray.shutdown()


def _drain(ray, task, queue, on_done, workers):
    pending = {}
    try:
        while queue or pending:
            while queue and len(pending) < workers:
                index, job = queue.pop(0)
                pending[task.remote(*job)] = index
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                on_done(pending.pop(ref), _result(ray, ref))
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
