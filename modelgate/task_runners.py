"""The task-runner setting of the flows that fan out (the learning curve, tune, seeds).

``local``            Prefect's thread pool in the flow's own process (the default).
``dask``             a Dask LocalCluster made for the run: worker processes on this machine,
                     one thread each (every task trains in a child process of its own anyway).
``dask://HOST:PORT`` an existing Dask cluster's scheduler.

Task parameters stay small (configs, feature manifests, S3 URIs): the arrays and models a task
needs move through S3, never through the Dask scheduler.
"""

from __future__ import annotations

import re

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

_ADDRESS = re.compile(r"^dask://(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})$")


class TaskRunnerError(ValueError):
    """The task-runner setting is not one of the forms above."""


def check_task_runner(setting: str) -> str:
    """The setting itself when valid, else TaskRunnerError (before any service starts)."""
    if setting in ("local", "dask"):
        return setting
    match = _ADDRESS.match(setting)
    if not match or not 0 < int(match["port"]) < 65536:
        raise TaskRunnerError(f"task runner {setting!r}: use local, dask or dask://HOST:PORT")
    return setting


def resolve_task_runner(setting: str) -> TaskRunner:
    """The Prefect task runner for ``local`` / ``dask`` / ``dask://HOST:PORT``."""
    check_task_runner(setting)
    if setting == "local":
        return ThreadPoolTaskRunner()
    from prefect_dask import DaskTaskRunner  # only runs that fan out on Dask import it

    if setting == "dask":
        return DaskTaskRunner(cluster_kwargs={"threads_per_worker": 1, "processes": True})
    return DaskTaskRunner(address=f"tcp://{setting[len('dask://'):]}")


def worker_name() -> str:
    """The Dask worker running the current task, or ``local`` outside a Dask worker."""
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except (ImportError, ValueError):
        return "local"
