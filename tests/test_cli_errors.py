"""Bad input on the command line gets one clear line and the documented exit code.

`modelgate run` exits 2 for a faulty config file or `--set` (one line naming the file and line, or
the `--set`), and for a run that fails outside validation: the root cause is the one error line on
stderr, the tracebacks go to the run's log file. TensorFlow's start-up notices never reach stderr.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fixtures_clinc import make_clinc_payload
from modelgate.cli import app
from modelgate.quiet import filtered_stderr

MODELGATE = str(Path(sys.executable).with_name("modelgate"))
TF_NOTICES = ("cudart_stub", "absl::InitializeLog", "cpu_feature_guard", "oneDNN", "TensorRT")


@pytest.fixture
def quiet_home(monkeypatch, tmp_path):
    """Every case here must fail while the configuration is resolved. Endpoints that answer
    nothing: a setting that slipped through would fail later, and never start a local stack."""
    monkeypatch.setenv("MODELGATE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MODELGATE_S3_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")


def _run(*args: str):
    return CliRunner().invoke(app, ["run", "intent-ood", *args])


def _the_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: "), result.output
    return lines[0]


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


# -- config file faults ----------------------------------------------------------------------
CONFIG_FAULTS = {
    # name: (file content, what the line must also say)
    "yaml syntax": ("train:\n  epochs: 3\n bad: [1,\n", ["not valid YAML", "line 3"]),
    "wrong type": ("train:\n  epochs: three\n", ["train.epochs", "'three'", "line 2"]),
    "unknown key": ("model:\n  head: sngp\ntrain:\n  epoch: 3\n", ["train.epoch", "unknown key", "line 4", "epochs"]),
    "not a mapping": ("- train\n- model\n", ["mapping", "list"]),
    "not UTF-8": (b"train:\n  epochs: \xff3\n", ["not UTF-8", "0xff", "line 2"]),
    "non-finite": ("train:\n  learning_rate: .inf\n", ["train.learning_rate", "finite", "line 2"]),
}


@pytest.mark.parametrize("fault", sorted(CONFIG_FAULTS))
def test_a_faulty_config_file_is_one_line_naming_the_file(fault, quiet_home, tmp_path):
    content, expected = CONFIG_FAULTS[fault]
    path = _write(tmp_path, "pipeline.yaml", content)
    line = _the_error_line(_run("--config", str(path)))
    assert str(path) in line
    for part in expected:
        assert part in line, (part, line)


def test_a_directory_missing_or_unreadable_config_is_one_line(quiet_home, tmp_path):
    directory = _the_error_line(_run("--config", str(tmp_path)))
    assert str(tmp_path) in directory and "directory" in directory
    missing = tmp_path / "nope.yaml"
    assert str(missing) in _the_error_line(_run("--config", str(missing)))
    below_a_file = _write(tmp_path, "plain.txt", "x") / "pipeline.yaml"
    line = _the_error_line(_run("--config", str(below_a_file)))
    assert str(below_a_file) in line and "could not be read" in line
    if os.geteuid() != 0:  # root reads any file
        locked = _write(tmp_path, "locked.yaml", "train: {}\n")
        locked.chmod(0)
        assert "permission denied" in _the_error_line(_run("--config", str(locked)))


# -- --set faults ----------------------------------------------------------------------------
SET_FAULTS = {
    "train.learning_rate=inf": ["train.learning_rate", "finite", "--set train.learning_rate=inf"],
    "train.learning_rate=nan": ["train.learning_rate", "finite"],
    "train.learning_rate=0": ["train.learning_rate", "greater than 0"],
    "train.epochs=0": ["train.epochs", "greater than or equal to 1"],
    "train.batch_size=-4": ["train.batch_size", "greater than or equal to 1"],
    "model.dropout=1e400": ["model.dropout", "finite"],
    "evaluate.mean_field_grid=[1.0, .nan]": ["evaluate.mean_field_grid.1", "finite"],
    "evaluate.mean_field_grid=[]": ["evaluate.mean_field_grid", "at least 1"],
    "train.epoch=3": ["train.epoch", "unknown key", "epochs"],
    "trian.epochs=3": ["trian", "unknown key"],
    "train.epochs": ["key.path=value"],
    "train..epochs=3": ["empty part"],
    "train.epochs=[1": ["not valid YAML"],
    "train.epochs.max=3": ["'epochs' is a value, not a section"],
}


@pytest.mark.parametrize("assignment", sorted(SET_FAULTS))
def test_a_faulty_set_is_one_line_naming_the_key(assignment, quiet_home):
    line = _the_error_line(_run("--profile", "quick", "--set", assignment))
    for part in SET_FAULTS[assignment]:
        assert part in line, (part, line)


# -- TensorFlow's start-up notices -----------------------------------------------------------
def test_predict_prints_nothing_from_tensorflow(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP", "MODELGATE_", "AWS_"))}
    env.update(MODELGATE_HOME=str(tmp_path / "home"), MODELGATE_S3_ENDPOINT="http://127.0.0.1:9",
               AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s", AWS_DEFAULT_REGION="us-east-1")
    done = subprocess.run([MODELGATE, "predict", "intent-ood:1", "hello"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 2
    assert not any(notice in done.stderr for notice in TF_NOTICES), done.stderr
    assert [line for line in done.stderr.splitlines() if line.strip()][0].startswith("error: "), done.stderr


def test_the_filter_drops_only_the_known_notices(capfd):
    with filtered_stderr():
        os.write(2, b"I0000 00:00:1.2 1 cudart_stub.cc:31] Could not find cuda drivers on your machine\n")
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        os.write(2, b"F0000 real_failure.cc:1] Check failed: something real\n")
    assert capfd.readouterr().err == "F0000 real_failure.cc:1] Check failed: something real\n"


# -- a failing run: the root cause first, the tracebacks in the log ---------------------------
@pytest.mark.slow
def test_a_truncated_data_file_is_one_line_before_any_traceback(tmp_path, flow_env):
    text = json.dumps(make_clinc_payload())
    data = _write(tmp_path, "data_full.json", text[: len(text) // 2])
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    done = subprocess.run([MODELGATE, "run", "intent-ood", "--set", f"data.source={data}"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "| ERROR" not in done.stderr, done.stderr
    assert not any(notice in done.stderr for notice in TF_NOTICES), done.stderr
    # Bad data fails the same way every time: the ingest task does not retry it.
    assert "Retry 1/" not in done.stderr, done.stderr
    problems = [line for line in done.stderr.splitlines() if line.strip() and "| INFO" not in line]
    assert problems[0].startswith("error: run failed: ") and str(data) in problems[0], done.stderr
    assert "is not valid JSON" in problems[0]
    details = re.search(r"^details: (\S+\.log)", done.stderr, re.M)
    assert details, done.stderr
    log = Path(details.group(1).rstrip(","))
    assert log.parent == flow_env / "logs" / "runs"
    logged = log.read_text()
    assert "Traceback" in logged and "is not valid JSON" in logged


@pytest.mark.slow
def test_a_data_file_that_is_not_utf8_names_the_file_and_the_byte(tmp_path, flow_env):
    from modelgate.runner import EXIT_ERROR, run_pipeline

    text = json.dumps(make_clinc_payload()).encode()
    offset = text.index(b"weather")
    data = _write(tmp_path, "data_full.json", text[:offset] + b"\xff" + text[offset + 1:])
    outcome = run_pipeline("intent-ood", overrides=[f"data.source={data}"])
    assert outcome.exit_code == EXIT_ERROR
    assert f"{data} is not UTF-8 text: byte 0xff at line 1 (byte offset {offset})" in outcome.error
    assert "\n" not in outcome.error and outcome.error_line().startswith("run failed: ")


def test_the_first_device_lookup_after_a_quiet_import_prints_nothing(tmp_path):
    """TensorFlow asks CUDA for a device at its first op, not at import: on a machine without a GPU
    that printed "failed call to cuInit" in the middle of a run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    script = ("import modelgate.quiet as quiet; quiet.install()\n"
              "import tensorflow as tf\n"
              "print(int(tf.reduce_sum(tf.constant([1, 2]))))\n")
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "3", done.stderr
    assert "cuInit" not in done.stderr and "cuda" not in done.stderr.lower(), done.stderr
