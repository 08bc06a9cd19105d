"""Run a pipeline's train stage in a process of its own.

TensorFlow and JAX keep the GPU memory they reserve until the process ends, so a flow that trains
in its own process (the worker's flow-run process) would hold the GPU through evaluation and
registration, and a second training in the same process could not get it. The train task therefore
starts a fresh Python process for training: when it exits, the framework's GPU memory is freed.
The child reads the same settings from the environment, talks to the same object storage, and
hands back only the small JSON manifest of the trained model; its output lines are passed on to
the caller (Prefect turns them into run logs).

Set ``MODELGATE_TRAIN_IN_PROCESS=1`` to train in the calling process instead (debugging).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Callable

from modelgate.pipelines.results import FeatureSet, TrainedModel
from modelgate.quiet import TENSORFLOW_NOTICES
from modelgate.storage import ObjectStore
from modelgate.training.backend import check_process_backend, training_environment
from modelgate.training.distribution import distributed_stage, initialize_multihost

IN_PROCESS_ENV = "MODELGATE_TRAIN_IN_PROCESS"
# TensorFlow's C++ informational lines ("I0000 00:00:...") and start-up notices: noise in a run log.
_NATIVE_INFO = re.compile(r"^I\d{4} \d\d:\d\d:\d\d")


class TrainingProcessError(RuntimeError):
    """Training failed in its child process; the message carries the child's error."""


def train_stage(pipeline, cfg, features: FeatureSet) -> TrainedModel:
    """The pipeline's train stage against the configured object store (runs in any process).

    Under ``train.distribution`` (pipelines whose train section has it; the others train on one
    device), so the model is built on the devices it trains on, and only under the Keras backend
    ``train.backend`` asks for (``training.backend``)."""
    check_process_backend(cfg)
    with distributed_stage(getattr(cfg.train, "distribution", "none")):
        return pipeline.train(cfg, ObjectStore.from_settings(), features)


def train_in_subprocess(
    pipeline, cfg, features: FeatureSet, log: Callable[[str], None] | None = None
) -> TrainedModel:
    """Train in a fresh Python process and return the trained model's manifest.

    The request crosses the process boundary as JSON: the pipeline's name, its resolved config and
    the feature set; the child finds the pipeline in ``PIPELINES`` and validates both again. The
    child runs the Keras backend ``train.backend`` names.
    """
    if os.environ.get(IN_PROCESS_ENV, "").lower() in ("1", "true", "yes"):
        return train_stage(pipeline, cfg, features)
    # `print` looked up at call time: inside a Prefect run with log_prints it is the patched print
    # that turns lines into run logs (and keeps them off the CLI's stdout).
    log = log or print
    environment = training_environment(cfg)
    with tempfile.TemporaryDirectory(prefix="modelgate-train-") as tmp:
        request, result = Path(tmp) / "request.json", Path(tmp) / "result.json"
        request.write_text(json.dumps({
            "pipeline": pipeline.name,
            "config": cfg.model_dump(mode="json"),
            "features": features.to_dict(),
        }))
        command = [sys.executable, "-u", "-m", "modelgate.training.isolated", str(request), str(result)]
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            env=environment,
            start_new_session=True,  # so a cancelled run can stop the whole child group
        ) as child:
            try:
                for line in child.stdout:
                    line = line.rstrip("\n")
                    if line and not _NATIVE_INFO.match(line) and not TENSORFLOW_NOTICES.search(line):
                        log(line)
                code = child.wait()
            except BaseException:  # cancelled or crashed: do not leave training running
                os.killpg(child.pid, signal.SIGTERM)
                child.wait()
                raise
        outcome = json.loads(result.read_text()) if result.is_file() else None
    if outcome is None:
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        hint = " (out of memory?)" if code in (-9, 137) else ""
        raise TrainingProcessError(f"the training process ended without a result: {how}{hint}")
    if "error" in outcome:
        raise TrainingProcessError(f"training failed: {outcome['error']}")
    return TrainedModel.from_dict(outcome["trained"])


def _child(request_path: str, result_path: str) -> int:
    # Imported here, not at the top: the parent imports this module from inside a pipeline's
    # task, and PIPELINES imports every pipeline (a cycle at module level).
    from modelgate.pipelines import get_pipeline

    request = json.loads(Path(request_path).read_text())
    try:
        # Before anything touches the backend: join a multi-host job when the environment names one.
        initialize_multihost()
        pipeline = get_pipeline(request["pipeline"])
        cfg = pipeline.config_from_dict(request["config"])
        features = FeatureSet.from_dict(request["features"])
        outcome = {"trained": train_stage(pipeline, cfg, features).to_dict()}
        code = 0
    except Exception as exc:
        traceback.print_exc()
        outcome, code = {"error": f"{type(exc).__name__}: {exc}"}, 1
    tmp = Path(result_path).with_suffix(".partial")
    tmp.write_text(json.dumps(outcome))
    os.replace(tmp, result_path)  # the parent sees a whole result or none
    return code


if __name__ == "__main__":  # the child process
    sys.exit(_child(sys.argv[1], sys.argv[2]))
