"""The task-runner setting, and the learning-curve fan-out on a real Dask cluster (a `dask
scheduler` and two named `dask worker` processes): every point runs on a worker, the results
equal the local runner's, and a point whose worker is killed is run again on the other one."""

from __future__ import annotations

import threading
import time

import pytest
from dask_cluster import DaskCluster
from fixtures_ethos import fixture_words, write_ethos_mirror
from prefect.task_runners import ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner
from test_toxicity_flow import write_config
from tiny_preset import build_tiny_preset

from modelgate.flows.toxicity_learning_curve import toxicity_learning_curve
from modelgate.task_runners import TaskRunnerError, check_task_runner, resolve_task_runner

WORKERS = ("worker-a", "worker-b")


def test_settings_resolve_to_task_runners():
    assert isinstance(resolve_task_runner("local"), ThreadPoolTaskRunner)
    made = resolve_task_runner("dask")
    assert isinstance(made, DaskTaskRunner) and made.address is None
    existing = resolve_task_runner("dask://10.0.0.5:8786")
    assert isinstance(existing, DaskTaskRunner) and existing.address == "tcp://10.0.0.5:8786"
    for bad in ("ray", "dask://host", "dask://host:99999", "tcp://host:8786"):
        with pytest.raises(TaskRunnerError, match=f"task runner '{bad}': use local, dask or dask://HOST:PORT"):
            check_task_runner(bad)


@pytest.fixture
def cluster(tmp_path, monkeypatch, modelgate_env, prefect_server):
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)  # the workers' task runs report here
    dask = DaskCluster(WORKERS, tmp_path)
    yield dask
    dask.stop()


@pytest.fixture
def curve_config(tmp_path):
    preset = build_tiny_preset(tmp_path / "tiny-bert", extra_words=fixture_words())
    return write_config(tmp_path, write_ethos_mirror(tmp_path / "mirror"), preset)


def curve(config: str, task_runner: str, sizes: str) -> dict:
    state = toxicity_learning_curve(
        config_file=config, task_runner=task_runner, return_state=True,
        overrides=[f"learning_curve.sizes={sizes}", "learning_curve.epochs=[1]", "learning_curve.parallel=2",
                   "train.resume=false"],  # both runners train every point afresh
    )
    assert state.is_completed(), state.message
    return {p["examples"]: p for p in state.result()["points"]}


@pytest.mark.slow
def test_points_run_on_workers_and_equal_the_local_runner(cluster, curve_config):
    local = curve(curve_config, "local", "[10, 20]")
    on_dask = curve(curve_config, f"dask://127.0.0.1:{cluster.port}", "[10, 20]")
    assert {p["worker"] for p in local.values()} == {"local"}
    assert {p["worker"] for p in on_dask.values()} <= set(WORKERS)
    for size in (10, 20):
        for metric in ("f1", "roc_auc", "f1_low", "f1_high"):
            assert on_dask[size][metric] == pytest.approx(local[size][metric], abs=1e-6), (size, metric)


@pytest.mark.slow
def test_killed_workers_point_is_retried_on_the_other(cluster, curve_config):
    outcome: dict = {}
    runner = threading.Thread(target=lambda: outcome.update(
        points=curve(curve_config, f"dask://127.0.0.1:{cluster.port}", "[10]")))
    runner.start()
    victim = None
    with cluster.client() as client:
        deadline = time.monotonic() + 600
        while victim is None and time.monotonic() < deadline:
            names = {addr: w["name"] for addr, w in client.scheduler_info()["workers"].items()}
            busy = [names[addr] for addr, keys in client.processing().items() if keys and addr in names]
            victim = busy[0] if busy else None
            time.sleep(0.5)
    assert victim, "no worker started the point"
    time.sleep(5)  # well inside the point's training
    cluster.kill_worker(victim)
    runner.join(timeout=900)
    assert not runner.is_alive() and "points" in outcome
    [point] = outcome["points"].values()
    assert point["worker"] == next(name for name in WORKERS if name != victim)
