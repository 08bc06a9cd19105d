"""One intent-ood run (tiny encoder, real Prefect server, real SeaweedFS) whose train task fails
once after a checkpoint: the retry resumes from that checkpoint; the run's artifacts carry keys of
their pipeline and embed their images; TensorBoard logs are staged; the gate and registration
events reach Prefect's events API."""

from __future__ import annotations

import pytest

from fixtures_clinc import clinc_tiny_preset, write_clinc_config, write_clinc_mirror
from prefect_ui import api, artifact_keys
from test_events import events_of

pytestmark = pytest.mark.slow


def test_a_run_retries_training_from_its_checkpoint_and_publishes_keyed_artifacts_and_events(
    tmp_path, tmp_path_factory, monkeypatch, modelgate_env, object_store, prefect_server
):
    from modelgate.runner import run_pipeline
    from modelgate.tasks.training import FAULT_ONCE_ENV

    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    marker = tmp_path / "fault-fired"
    monkeypatch.setenv(FAULT_ONCE_ENV, str(marker))
    config = write_clinc_config(tmp_path, write_clinc_mirror(tmp_path / "mirror"),
                                clinc_tiny_preset(tmp_path_factory.mktemp("preset")))

    outcome = run_pipeline("intent-ood", profile="default", config_file=config, overrides=["train.epochs=3"])
    assert outcome.exit_code == 0, outcome.error
    assert marker.is_file(), "the injected fault never fired"
    training = object_store.get_json("registry/intent-ood/versions/1/manifest.json")["training"]
    # The retry started from the checkpoint the failed attempt left, not from epoch 0.
    assert training["resumed_from_epoch"] in (1, 2) and training["epochs_run"] == 3 - training["resumed_from_epoch"]
    [train_run] = api(prefect_server, "/task_runs/filter", {
        "flow_runs": {"id": {"any_": [outcome.flow_run_id]}}, "task_runs": {"name": {"like_": "train"}},
        "limit": 10, "offset": 0, "sort": "EXPECTED_START_TIME_DESC"})
    assert train_run["run_count"] == 2 and train_run["state"]["type"] == "COMPLETED"
    # TensorBoard logs, written from the per-epoch history (this pipeline's loop has no callback).
    logs = training["tensorboard_uri"]
    assert logs and any("tfevents" in k for k in object_store.list_keys(object_store.key_of(logs)))

    keys = artifact_keys(prefect_server, outcome.flow_run_id)
    assert {"intent-ood-metrics", "intent-ood-gate-verdict", "intent-ood-report", "intent-ood-validation",
            "intent-ood-training", "intent-ood-model-version", "intent-ood-plot-ood-roc"} <= keys
    assert not keys & {"metrics", "gate-verdict", "report"}
    [report] = api(prefect_server, "/artifacts/filter", {
        "artifacts": {"key": {"any_": ["intent-ood-report"]}, "flow_run_id": {"any_": [outcome.flow_run_id]}},
        "limit": 5, "offset": 0, "sort": "CREATED_DESC"})
    assert "](data:image/png;base64," in report["data"] and "](plots/" not in report["data"]
    assert "X-Amz-Signature" not in str(api(prefect_server, "/artifacts/filter", {
        "artifacts": {"flow_run_id": {"any_": [outcome.flow_run_id]}}, "limit": 100, "offset": 0,
        "sort": "CREATED_DESC"}))
    assert "modelgate open intent-ood:1 report" in outcome.describe()

    found = events_of(prefect_server, "modelgate.model.intent-ood", {"modelgate.gate.refused", "modelgate.version.registered"})
    # This run's events only: other tests on the same server register intent-ood versions too.
    this_run = f"prefect.flow-run.{outcome.flow_run_id}"
    by_name = {e["event"]: e for e in found if this_run in {r["prefect.resource.id"] for r in e["related"]}}
    refused = by_name["modelgate.gate.refused"]  # the default gate is out of reach for a tiny encoder
    assert refused["payload"]["version"] == 1 and refused["payload"]["decision"] == "fail"
    assert set(refused["payload"]["metrics"]) >= {"accuracy", "ood_auprc"}
    assert by_name["modelgate.version.registered"]["payload"]["status"] == "failed"
    related = {r["prefect.resource.id"] for r in refused["related"]}
    assert "modelgate.version.intent-ood:1" in related and this_run in related
