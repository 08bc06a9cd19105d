"""Data-parallel training (train.distribution) on two virtual CPU devices, and across two processes.

JAX fixes its device count when it starts, so each training runs in a subprocess with
XLA_FLAGS=--xla_force_host_platform_device_count=2 (two devices in one process) or with
MODELGATE_COORDINATOR set (two processes, one CPU device each, joined over localhost with gloo).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modelgate.training.distribution import (
    DataPlan,
    DistributionError,
    multihost_from_env,
)
from tiny_preset import build_tiny_preset

REPO = Path(__file__).resolve().parents[1]
# Data-parallel and one-device losses differ only by the order of floating-point sums.
LOSS_RTOL = 1e-4

TRAIN_SCRIPT = r"""
import json, os, sys
import numpy as np, keras, jax
from modelgate.models import EncoderClassifier, load_backbone
from modelgate.training.distribution import initialize_multihost
from modelgate.training.optimizer import TrainSettings
from modelgate.training.trainer import set_seed, train_classifier

preset, tokens, mode, epochs, out = sys.argv[1:6]
initialize_multihost()  # no-op unless MODELGATE_COORDINATOR is set
data = np.load(tokens)
x = {k: data[k] for k in ("token_ids", "padding_mask", "segment_ids")}

class StopBefore(keras.callbacks.Callback):  # "crash" at the start of an epoch (after a checkpoint)
    def __init__(self, epoch):
        super().__init__(); self.epoch = epoch
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt

checkpointer = None
if os.environ.get("CKPT_PREFIX"):
    from modelgate.storage import ObjectStore
    from modelgate.training.checkpoint import S3Checkpointer
    checkpointer = S3Checkpointer(ObjectStore.from_settings(), os.environ["CKPT_PREFIX"], keep_last=None)
stop = [StopBefore(int(os.environ["STOP_BEFORE"]))] if os.environ.get("STOP_BEFORE") else []

set_seed(3)
model = EncoderClassifier(load_backbone(preset), num_classes=4, num_inducing=32, dropout=0.0)
cfg = TrainSettings(epochs=int(epochs), batch_size=8, learning_rate=1e-2, seed=3, distribution=mode)
report = {"devices": len(jax.devices()), "process": jax.process_index()}
try:
    result = train_classifier(model, x, data["labels"], x, data["labels"], cfg,
                              checkpointer=checkpointer, callbacks=stop)
    report.update(loss=result.history["loss"], val_loss=result.history["val_loss"],
                  resumed_from_epoch=result.resumed_from_epoch, plan_devices=result.devices)
except KeyboardInterrupt:
    report["stopped"] = True
variables = {"kernel": model.trainable_variables[0], "precision": model.output_head.precision}
if model.optimizer.built:
    variables["moment"] = model.optimizer.variables[-1]
report["sharding_devices"] = {k: len(v.value.sharding.device_set) for k, v in variables.items()}
report["iterations"] = int(np.asarray(model.optimizer.iterations.value))
json.dump(report, open(out, "w"))
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("distribution")
    preset = build_tiny_preset(root / "preset")
    rng = np.random.default_rng(0)
    count = 51  # last batch of 3 rows: cut to 2 on two devices
    mask = (np.arange(16)[None, :] < rng.integers(4, 17, count)[:, None]).astype("int32")
    np.savez(root / "tokens.npz", token_ids=(rng.integers(5, 60, (count, 16)) * mask).astype("int32"),
             padding_mask=mask, segment_ids=np.zeros((count, 16), "int32"), labels=rng.integers(0, 4, count))
    (root / "train.py").write_text(TRAIN_SCRIPT)
    return root


def _env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELGATE_", "KERAS_DISTRIBUTION"))}
    env.update(PYTHONPATH=str(REPO), KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
    env.update(extra)
    return env


def _start(workdir: Path, mode: str, epochs: int, out: str, env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, str(workdir / "train.py"), str(workdir / "preset"), str(workdir / "tokens.npz"),
               mode, str(epochs), str(workdir / out)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(workdir: Path, process: subprocess.Popen, out: str) -> dict:
    output, _ = process.communicate(timeout=1500)
    assert process.returncode == 0, output[-3000:]
    return json.loads((workdir / out).read_text())


def _train(workdir: Path, mode: str, epochs: int, out: str, **env) -> dict:
    return _finish(workdir, _start(workdir, mode, epochs, out, _env(**env)), out)


def _train_together(workdir: Path, *runs: tuple[str, int, str, dict]) -> list[dict]:
    """Independent trainings (mode, epochs, out, env) side by side: each is a process of its own,
    mostly single-threaded start-up, so two of them take about as long as one on two cores."""
    started = [(_start(workdir, mode, epochs, out, _env(**env)), out) for mode, epochs, out, env in runs]
    return [_finish(workdir, process, out) for process, out in started]


def _s3_env(s3_server, store, prefix: str) -> dict[str, str]:
    return {"MODELGATE_S3_ENDPOINT": s3_server.endpoint, "MODELGATE_BUCKET": store.bucket,
            "AWS_ACCESS_KEY_ID": s3_server.credentials.access_key,
            "AWS_SECRET_ACCESS_KEY": s3_server.credentials.secret_key, "CKPT_PREFIX": prefix}


TWO_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}


@pytest.mark.slow
def test_data_parallel_checkpoint_resumes_like_an_uninterrupted_run(workdir, s3_server, object_store):
    s3 = _s3_env(s3_server, object_store, "runs/dp/ckpt")
    straight, stopped = _train_together(
        workdir,
        ("data_parallel", 3, "straight.json", TWO_DEVICES),
        ("data_parallel", 3, "stopped.json", {"STOP_BEFORE": "2", **TWO_DEVICES, **s3}),
    )
    assert stopped["stopped"] and object_store.get_json("runs/dp/ckpt/latest.json")["epoch"] == 2
    resumed = _train(workdir, "data_parallel", 3, "resumed.json", **TWO_DEVICES, **s3)

    # Variables, GP precision and optimizer moments live on both devices.
    for report in (straight, stopped, resumed):
        assert report["sharding_devices"] == {"kernel": 2, "precision": 2, "moment": 2}
    assert resumed["plan_devices"] == 2
    assert resumed["resumed_from_epoch"] == 2 and len(resumed["loss"]) == 1
    # 51 rows, batch 8: 6 full batches and the last 3 rows cut to 2 on two devices, 7 steps an epoch.
    assert resumed["iterations"] == straight["iterations"] == 21
    np.testing.assert_allclose(resumed["loss"], straight["loss"][2:], rtol=1e-5)
    np.testing.assert_allclose(resumed["val_loss"], straight["val_loss"][2:], rtol=1e-5)
    assert object_store.get_json("runs/dp/ckpt/latest.json")["epoch"] == 3


@pytest.fixture(scope="module")
def even(workdir) -> Path:
    """The first 48 rows: six full batches, which two devices split evenly."""
    rows = np.load(workdir / "tokens.npz")
    even = workdir / "even"
    even.mkdir()
    (even / "preset").symlink_to(workdir / "preset")
    (even / "train.py").write_text(TRAIN_SCRIPT)
    np.savez(even / "tokens.npz", **{k: rows[k][:48] for k in rows.files})
    return even


@pytest.fixture(scope="module")
def even_runs(even) -> dict[str, dict]:
    """On the even rows: one device in a one-device process (the reference both data-parallel
    tests compare with), and auto in a two-device process, trained side by side."""
    single, parallel = _train_together(
        even, ("none", 2, "single.json", {}), ("auto", 2, "auto.json", TWO_DEVICES)  # auto: two devices -> data parallel
    )
    return {"single": single, "auto": parallel}


@pytest.mark.slow
def test_data_parallel_losses_match_one_device_when_batches_split_evenly(even_runs):
    single, parallel = even_runs["single"], even_runs["auto"]
    assert single["devices"] == 1 and single["plan_devices"] == 1
    assert parallel["plan_devices"] == 2 and parallel["sharding_devices"]["kernel"] == 2
    np.testing.assert_allclose(parallel["loss"], single["loss"], rtol=LOSS_RTOL)
    np.testing.assert_allclose(parallel["val_loss"], single["val_loss"], rtol=LOSS_RTOL)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_data_parallel_like_one(even, even_runs):
    single = even_runs["single"]
    coordinator = f"127.0.0.1:{_free_port()}"
    processes = [
        _start(even, "auto", 2, f"process{i}.json",
               _env(MODELGATE_COORDINATOR=coordinator, MODELGATE_NUM_PROCESSES="2", MODELGATE_PROCESS_ID=str(i)))
        for i in range(2)
    ]
    for process in processes:
        output, _ = process.communicate(timeout=1500)
        assert process.returncode == 0, output[-3000:]
    reports = [json.loads((even / f"process{i}.json").read_text()) for i in range(2)]
    for index, report in enumerate(reports):
        assert report["process"] == index and report["devices"] == 2 and report["plan_devices"] == 2
        assert report["sharding_devices"]["kernel"] == 2
        np.testing.assert_allclose(report["loss"], single["loss"], rtol=LOSS_RTOL)
        np.testing.assert_allclose(report["val_loss"], single["val_loss"], rtol=LOSS_RTOL)


# -- the plan and the settings, no backend needed --------------------------------------------------
def test_process_slices_put_side_by_side_are_the_one_process_batches():
    order = np.random.default_rng(1).permutation(21)
    one = DataPlan(devices=4, processes=1).epoch_rows(order, 8)
    assert list(one) == list(order[:20])  # last batch of 5 cut to 4
    parts = [DataPlan(devices=4, processes=2, process_id=p).epoch_rows(order, 8) for p in range(2)]
    assert [len(p) for p in parts] == [10, 10]
    rebuilt = np.concatenate([np.concatenate([parts[0][i : i + 4], parts[1][i : i + 4]]) for i in range(0, 10, 4)])
    assert list(rebuilt) == list(one)
    assert list(DataPlan(devices=4, processes=2, process_id=1).validation_rows(11)) == [4, 5, 6, 7]


def test_batch_size_must_split_over_the_devices():
    with pytest.raises(DistributionError, match="batch_size=6 is not a multiple of the 4 devices"):
        DataPlan(devices=4).check(6)
    with pytest.raises(DistributionError, match="length_bucketing"):
        DataPlan(devices=2, processes=2).check(8, length_bucketing=True)


def test_multihost_settings_from_either_set_of_variables():
    assert multihost_from_env({}) is None
    ours = multihost_from_env({"MODELGATE_COORDINATOR": "10.0.0.1:1234", "MODELGATE_NUM_PROCESSES": "2",
                               "MODELGATE_PROCESS_ID": "1"})
    assert (ours.coordinator, ours.num_processes, ours.process_id) == ("10.0.0.1:1234", 2, 1)
    keras_names = multihost_from_env({"KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1:1234,10.0.0.2:1234",
                                      "KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": "0"})
    assert keras_names.coordinator == "10.0.0.1:1234"
    with pytest.raises(DistributionError, match="missing: MODELGATE_PROCESS_ID"):
        multihost_from_env({"MODELGATE_COORDINATOR": "h:1", "MODELGATE_NUM_PROCESSES": "2"})
    with pytest.raises(DistributionError, match=r"MODELGATE_PROCESS_ID=2 must be in \[0, MODELGATE_NUM_PROCESSES=2\)"):
        multihost_from_env({"MODELGATE_COORDINATOR": "h:1", "MODELGATE_NUM_PROCESSES": "2", "MODELGATE_PROCESS_ID": "2"})


OTHER_BACKEND_CHECK = """
import json
from modelgate.training.distribution import DistributionError, resolve_distribution
answers = {mode: repr(resolve_distribution(mode)) for mode in ("auto", "none")}
for mode in ("data_parallel", "mirrored"):
    try:
        resolve_distribution(mode)
        answers[mode] = "accepted"
    except DistributionError as exc:
        answers[mode] = str(exc)
print("ANSWERS " + json.dumps(answers))
"""


def test_other_backends_refuse_data_parallel_and_ignore_auto():
    # A process of its own: the backend is fixed when Keras is first imported.
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", OTHER_BACKEND_CHECK], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = [l for l in done.stdout.splitlines() if l.startswith("ANSWERS ")]
    answers = json.loads(line[len("ANSWERS "):])
    assert answers["auto"] == "None" and answers["none"] == "None"
    assert "data_parallel needs the JAX backend" in answers["data_parallel"]
    assert "must be one of auto, none, data_parallel" in answers["mirrored"]
