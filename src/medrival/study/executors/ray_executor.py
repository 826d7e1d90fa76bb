"""The Ray executor: each group is a Ray task sized from its model card; results come back to the driver.

Ray does the scheduling, placement and retries (no home-made scheduler here). A task asks for the resources of
its model's size class: a fraction of a GPU for a small contrastive model, a whole GPU for a generative one,
CPUs only on a cluster without GPUs. A worker process keeps its ``CellContext`` between tasks, so a model is
loaded once per worker while its groups keep arriving. A task whose worker dies is retried by Ray
(``max_retries``); since a task returns its cells' results only when it ends, a retried task can never deliver a
cell twice. The driver stays the store's single writer and saves each task's results as the task finishes.

``address``: ``local`` (or none) starts a one-machine cluster bound to 127.0.0.1 for the run; ``auto`` joins the
cluster this machine belongs to (``ray start --head`` / a SLURM allocation, see the README); ``HOST:PORT`` or
``ray://HOST:PORT`` joins that one.
"""
from __future__ import annotations

from medrival.core.errors import ConfigError, full_message
from medrival.study.executors.base import Driver, crash_record
from medrival.study.executors.groups import CellGroup, longest_first
from medrival.study.executors.worker import WorkerSettings

TASK_RETRIES = 2  # Ray re-runs a task whose worker process or node died this many times
SMALL_MODEL_GPU_SHARE = 0.25  # contrastive models of ~100-400M parameters: four cells share one GPU
LARGE_MODEL_PARAMETERS = 1e9

_WORKER_CONTEXT: dict = {}  # per Ray worker process: the context (and so the loaded model) survives tasks


def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("executor kind 'ray' needs Ray, which is not installed: pip install 'medrival[ray]' "
                          "(or pip install ray), or run without --executor ray.") from None
    return ray


def task_resources(model: str, cluster_gpus: float, threads: int) -> dict:
    """Ray resource request of a group of ``model``'s cells on a cluster with ``cluster_gpus`` GPUs."""
    from medrival.models.catalog import get_card

    if cluster_gpus <= 0:
        return {"num_cpus": threads, "num_gpus": 0}
    card = get_card(model)
    parameters = getattr(card, "parameters", None) or 0
    large = (card.family == "generative" and not card.synthetic) or parameters >= LARGE_MODEL_PARAMETERS
    return {"num_cpus": threads, "num_gpus": 1 if large else SMALL_MODEL_GPU_SHARE}


def _run_group_task(spec, settings: WorkerSettings, cells):
    """Body of a Ray task: the results of ``cells``, in order, as (record, predictions) pairs."""
    from medrival.study.executors.worker import limit_threads, prepare_worker, run_group

    key = repr(settings)
    if key not in _WORKER_CONTEXT:
        _WORKER_CONTEXT.clear()
        limit_threads(settings.threads)
        prepare_worker(spec)
        _WORKER_CONTEXT[key] = settings.context()
    else:
        prepare_worker(spec)  # another study may share this worker: its own names must be known
    results = []
    run_group(cells, _WORKER_CONTEXT[key], lambda event, _index, payload: event == "result" and
              results.append(payload))
    return results


def connect(ray, address: str | None, num_cpus: int | None) -> bool:
    """Start or join a cluster; True when this call started one (and so must shut it down)."""
    if ray.is_initialized():
        return False
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
    if address in (None, "", "local"):
        ray.init(num_cpus=num_cpus, _node_ip_address="127.0.0.1", **quiet)
        return True
    try:
        ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError) as error:
        raise ConfigError(f"cannot join the Ray cluster at {address!r}: {error}. Start one first (ray start --head "
                          "on the head node; see the README's 'Run at scale'), check the address, or use "
                          "--executor local.") from None
    return True


def run_on_ray(groups: list[CellGroup], spec, settings: WorkerSettings, driver: Driver, address: str | None = None,
               num_cpus: int | None = None) -> None:
    """Run ``groups`` as Ray tasks (see the module docstring); blocks until every group has a result."""
    ray = import_ray()
    started_here = connect(ray, address, num_cpus)
    try:
        remote = ray.remote(max_retries=TASK_RETRIES, retry_exceptions=False)(_run_group_task)
        gpus = float(ray.cluster_resources().get("GPU", 0))
        spec_ref, settings_ref = ray.put(spec), ray.put(settings)
        tasks = {}
        for group in longest_first(groups):
            cells = driver.claim(group.cells)
            if cells:
                options = task_resources(group.model, gpus, settings.threads or 1)
                tasks[remote.options(**options).remote(spec_ref, settings_ref, cells)] = cells
        _collect(ray, tasks, driver)
    finally:
        if started_here:
            ray.shutdown()


def _collect(ray, tasks: dict, driver: Driver) -> None:
    """Save each task's results as it finishes; a task that failed for good fails its cells with the reason."""
    while tasks:
        ready, _ = ray.wait(list(tasks), num_returns=1)
        cells = tasks.pop(ready[0])
        try:
            results = ray.get(ready[0])
        except Exception as error:  # noqa: BLE001 - a lost task is its cells' failure, not the study's
            reason = (f"the Ray task of this cell failed after {TASK_RETRIES} retries: "
                      f"{full_message(error).splitlines()[0]}")
            results = [(crash_record(cell, reason), None) for cell in cells]
        for cell, (record, predictions) in zip(cells, results):
            driver.started(cell)
            driver.finished(cell, record, predictions)
