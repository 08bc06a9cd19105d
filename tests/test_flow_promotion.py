"""The promote-model flow on a real Prefect server: gate, pause for a person's decision (resumed
with input through the API, as the UI's Resume form does), audit events, alias moves."""

from __future__ import annotations

import threading
import time

import pytest

from candidates import register_candidate
from modelgate.flows.promotion import promote_model
from modelgate.registry import Registry


@pytest.fixture
def registry(prefect_server, modelgate_env, object_store, tmp_path) -> Registry:
    return Registry(object_store, cache_dir=tmp_path / "cache")


def _paused_run(flow_name: str, timeout: float = 120.0):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
                ),
                sort=FlowRunSort.START_TIME_DESC,  # this client sends null defaults the server refuses
                limit=5,
            )
            if runs:
                return runs[0]
            time.sleep(0.5)
    raise AssertionError(f"no paused run of {flow_name} within {timeout} s")


def _run_in_thread(**params):
    box: dict = {}

    def target():
        box["state"] = promote_model(**params, return_state=True)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, box


def test_a_passing_candidate_is_promoted_without_approval(registry, tmp_path):
    register_candidate(registry, tmp_path, "clf", 0.90)
    result = promote_model("clf", 1, require_approval=False, reason="release 1")
    assert result["decision"] == "promoted" and result["version"] == 1
    assert registry.resolve("clf@production").version == 1
    [event] = registry.audit_events("clf")
    assert event["event"] == "promote" and event["reason"] == "release 1" and event["flow_run_id"]


def test_a_refused_candidate_fails_the_run_and_moves_nothing(registry, tmp_path):
    register_candidate(registry, tmp_path, "clf", 0.40)
    state = promote_model("clf", 1, require_approval=False, return_state=True)
    assert state.is_failed()
    assert "gate failed at registration" in str(state.result(raise_on_failure=False))
    assert registry.get_alias("clf", "production") is None


@pytest.mark.parametrize("approve", [True, False])
def test_the_run_pauses_for_a_person_and_records_who_decided(registry, tmp_path, approve):
    from prefect.flow_runs import resume_flow_run

    register_candidate(registry, tmp_path, "clf", 0.90)
    thread, box = _run_in_thread(model="clf", version=1, require_approval=True)
    paused = _paused_run("promote-model")
    assert registry.get_alias("clf", "production") is None  # nothing moves while it waits
    resume_flow_run(paused.id, run_input={"approve": approve, "approver": "dana", "comment": "checked"})
    thread.join(timeout=180)
    assert not thread.is_alive()
    result = box["state"].result()

    events = registry.audit_events("clf")
    approval = next(e for e in events if e["event"] == "approval")
    assert approval["actor"] == "dana" and approval["flow_run_id"] == str(paused.id)
    if approve:
        assert result["decision"] == "promoted" and result["actor"] == "dana"
        assert registry.resolve("clf@production").version == 1
        assert approval["decision"] == "approved" and events[-1]["event"] == "promote"
    else:
        assert result == {"ref": "clf:1", "alias": "production", "decision": "rejected", "approver": "dana"}
        assert approval["decision"] == "rejected"
        assert registry.get_alias("clf", "production") is None
