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

import importlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, Callable

IN_PROCESS_ENV = "MODELGATE_TRAIN_IN_PROCESS"
# TensorFlow's C++ informational lines ("I0000 00:00:..."): noise in a run log.
_NATIVE_INFO = re.compile(r"^I\d{4} \d\d:\d\d:\d\d")


class TrainingProcessError(RuntimeError):
    """Training failed in its child process; the message carries the child's error."""


def _config_class_path(cfg) -> str:
    cls = type(cfg)
    return f"{cls.__module__}:{cls.__qualname__}"


def _load_attr(path: str):
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def train_stage(cfg, features: dict[str, Any]) -> dict[str, Any]:
    """The pipeline's ``train(cfg, store, features)``, as a JSON-able dict (runs in any process)."""
    from modelgate.pipelines import get_pipeline
    from modelgate.storage import ObjectStore

    store = ObjectStore.from_settings()
    trained = get_pipeline(cfg.pipeline).train(cfg, store, features)
    return trained.to_dict() if hasattr(trained, "to_dict") else dict(trained)


def train_in_subprocess(
    cfg, features: dict[str, Any], log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Train in a fresh Python process and return the trained model's manifest."""
    if os.environ.get(IN_PROCESS_ENV, "").lower() in ("1", "true", "yes"):
        return train_stage(cfg, features)
    with tempfile.TemporaryDirectory(prefix="modelgate-train-") as tmp:
        request, result = Path(tmp) / "request.json", Path(tmp) / "result.json"
        request.write_text(json.dumps({
            "config_class": _config_class_path(cfg),
            "config": cfg.model_dump(mode="json"),
            "features": features,
        }))
        command = [sys.executable, "-u", "-m", "modelgate.training.isolated", str(request), str(result)]
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            start_new_session=True,  # so a cancelled run can stop the whole child group
        ) as child:
            try:
                for line in child.stdout:
                    line = line.rstrip("\n")
                    if line and not _NATIVE_INFO.match(line):
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
    return outcome["trained"]


def _child(request_path: str, result_path: str) -> int:
    request = json.loads(Path(request_path).read_text())
    try:
        cfg = _load_attr(request["config_class"]).model_validate(request["config"])
        outcome = {"trained": train_stage(cfg, request["features"])}
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
