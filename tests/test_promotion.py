"""The CI gate, promotion, rollback and approval records against a real SeaweedFS registry."""

from __future__ import annotations

import json
import threading

import pytest
from typer.testing import CliRunner

from candidates import register_candidate
from modelgate.registry.promotion import (
    EXIT_PASS,
    EXIT_REFUSED,
    EXIT_UNDECIDED,
    PromotionError,
    PromotionRefused,
    check_gate,
    promote,
    record_approval,
    rollback,
)
from modelgate.registry import Registry
from modelgate.settings import Credentials
from modelgate.storage import ObjectStore


@pytest.fixture
def registry(object_store, tmp_path) -> Registry:
    return Registry(object_store, cache_dir=tmp_path / "cache")


def test_a_passing_candidate_passes_and_is_promoted_with_an_audit_event(registry, tmp_path):
    v1 = register_candidate(registry, tmp_path, "clf", 0.90)
    decision = check_gate(registry, f"clf:{v1}")
    assert decision.exit_code == EXIT_PASS, decision.reason
    assert decision.line().startswith("pass: clf:1: PASS")

    move = promote(registry, "clf:1", "production", actor="alice", reason="first release")
    assert (move.version, move.previous_version, move.changed) == (1, None, True)
    assert registry.resolve("clf@production").version == 1
    [event] = registry.audit_events("clf")
    assert event["event"] == "promote" and event["actor"] == "alice" and event["forced"] is False
    assert event["reason"] == "first release" and event["gate"].startswith("PASS")
    # Promoting again is a no-op, not a second event.
    assert not promote(registry, "clf:1", "production", actor="alice").changed
    assert len(registry.audit_events("clf")) == 1


def test_a_failed_gate_is_refused_unless_forced_with_a_reason(registry, tmp_path):
    register_candidate(registry, tmp_path, "clf", 0.50)  # below the 0.80 threshold
    decision = check_gate(registry, "clf:1")
    assert decision.exit_code == EXIT_REFUSED
    assert "gate failed at registration" in decision.reason and "accuracy" in decision.reason

    with pytest.raises(PromotionRefused, match="failed its gate"):
        promote(registry, "clf:1", "production", actor="bob")
    with pytest.raises(PromotionError, match="--force needs --reason"):
        promote(registry, "clf:1", "production", actor="bob", force=True)
    assert registry.get_alias("clf", "production") is None

    move = promote(registry, "clf:1", "production", actor="bob", force=True, reason="hotfix")
    assert move.forced
    [event] = registry.audit_events("clf")
    assert event["forced"] is True and event["reason"] == "hotfix" and event["actor"] == "bob"


def test_the_gate_is_rechecked_against_production_as_it_is_now(registry, tmp_path):
    register_candidate(registry, tmp_path, "clf", 0.85)
    promote(registry, "clf:1", "production", actor="ci")
    v2 = register_candidate(registry, tmp_path, "clf", 0.86)  # passes against v1
    v3 = register_candidate(registry, tmp_path, "clf", 0.95)  # passes against v1 too
    assert check_gate(registry, f"clf:{v2}").exit_code == EXIT_PASS
    promote(registry, f"clf:{v3}", "production", actor="ci")

    # Production moved to v3 since v2 was gated: v2 now drops 0.09 accuracy.
    decision = check_gate(registry, f"clf:{v2}")
    assert decision.exit_code == EXIT_REFUSED
    assert decision.stored_verdict["decision"] == "pass"
    assert decision.verdict["baseline_ref"] == "clf:3" and "re-checked now" in decision.reason
    # The version in production is not compared with itself.
    assert check_gate(registry, f"clf:{v3}").exit_code == EXIT_PASS


def test_undecidable_cases_exit_2_with_the_reason(registry, tmp_path, object_store):
    register_candidate(registry, tmp_path, "clf", 0.90)
    missing = check_gate(registry, "clf:7")
    assert missing.exit_code == EXIT_UNDECIDED and "clf:7 is not in the registry" in missing.reason

    object_store.put_bytes("registry/clf/versions/1/model.keras", b"tampered")
    corrupted = check_gate(registry, "clf:1")  # decided: a version that fails verification is refused
    assert corrupted.exit_code == EXIT_REFUSED and "failed verification" in corrupted.reason
    assert "'model.keras' has sha256" in corrupted.reason

    closed = ObjectStore.connect(
        "http://127.0.0.1:9", "bucket", credentials=Credentials("AKIA", "secret-value"), max_attempts=1
    )
    unreachable = check_gate(Registry(closed, cache_dir=tmp_path / "c2"), "clf:1")
    assert unreachable.exit_code == EXIT_UNDECIDED and "could not decide" in unreachable.reason
    assert "secret-value" not in unreachable.reason


def test_simultaneous_promotions_lose_no_update(registry, tmp_path):
    for accuracy in (0.90, 0.91, 0.92, 0.93):
        register_candidate(registry, tmp_path, "clf", accuracy)
    outcomes: list[object] = []
    barrier = threading.Barrier(4)

    def attempt(version: int) -> None:
        barrier.wait()
        try:
            outcomes.append(promote(registry, f"clf:{version}", "production", actor=f"ci-{version}"))
        except PromotionError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=attempt, args=(v,)) for v in (1, 2, 3, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    moves = [o for o in outcomes if not isinstance(o, Exception)]
    lost = [o for o in outcomes if isinstance(o, Exception)]
    assert moves and all("retry" in str(exc) for exc in lost)
    record = registry.get_alias("clf", "production")
    # Every move that reported success is in the history: none was overwritten.
    assert sorted(h["version"] for h in record.history) == sorted(m.version for m in moves)
    assert record.version == record.history[-1]["version"]


def test_rollback_returns_to_the_previous_version_and_is_audited(registry, tmp_path):
    for accuracy in (0.90, 0.92):
        register_candidate(registry, tmp_path, "clf", accuracy)
    with pytest.raises(PromotionError, match="does not exist"):
        rollback(registry, "clf", "production", actor="ops")
    promote(registry, "clf:1", "production", actor="ci")
    with pytest.raises(PromotionError, match="no earlier version.*give --to VERSION"):
        rollback(registry, "clf", "production", actor="ops")
    promote(registry, "clf:2", "production", actor="ci")

    move = rollback(registry, "clf", "production", actor="ops", reason="latency regression")
    assert (move.version, move.previous_version) == (1, 2)
    events = registry.audit_events("clf")
    assert [e["event"] for e in events] == ["promote", "promote", "rollback"]
    assert events[-1]["from_version"] == 2 and events[-1]["reason"] == "latency regression"
    assert rollback(registry, "clf", "production", to_version=2, actor="ops").version == 2


def test_two_rollbacks_in_a_row_step_back_two_promotions_then_stop(registry, tmp_path):
    for accuracy in (0.90, 0.91, 0.92):
        register_candidate(registry, tmp_path, "clf", accuracy)
    for version in (1, 2, 3):
        promote(registry, f"clf:{version}", "production", actor="ci")

    first = rollback(registry, "clf", "production", actor="ops", reason="v3 slow")
    assert (first.previous_version, first.version) == (3, 2)
    second = rollback(registry, "clf", "production", actor="ops", reason="v2 slow too")
    assert (second.previous_version, second.version) == (2, 1)  # not back to 3
    with pytest.raises(PromotionError, match="no earlier version"):
        rollback(registry, "clf", "production", actor="ops")
    assert registry.resolve("clf@production").version == 1

    # A new promotion goes on top: rolling it back returns to 1, not to 2 or 3.
    promote(registry, "clf:3", "production", actor="ci", reason="fixed")
    assert rollback(registry, "clf", "production", actor="ops").version == 1
    events = [(e["event"], e["version"]) for e in registry.audit_events("clf")]
    assert events == [("promote", 1), ("promote", 2), ("promote", 3), ("rollback", 2),
                      ("rollback", 1), ("promote", 3), ("rollback", 1)]


def test_approvals_are_recorded_with_who_decided(registry, tmp_path):
    register_candidate(registry, tmp_path, "clf", 0.90)
    record_approval(registry, "clf:1", "production", approved=False, approver="carol",
                    comment="wait for the holiday freeze", flow_run_id="run-1")
    [event] = registry.audit_events("clf")
    assert event["event"] == "approval" and event["decision"] == "rejected"
    assert (event["actor"], event["version"], event["flow_run_id"]) == ("carol", 1, "run-1")


def test_cli_exit_codes_and_alias_history(modelgate_env, object_store, tmp_path, monkeypatch):
    from modelgate.cli import app

    registry = Registry(object_store, cache_dir=tmp_path / "cache")
    register_candidate(registry, tmp_path, "clf", 0.90)
    register_candidate(registry, tmp_path, "clf", 0.40)
    cli = CliRunner()
    monkeypatch.setenv("MODELGATE_ACTOR", "release-bot")

    passed = cli.invoke(app, ["gate", "clf:1", "--json"])
    assert passed.exit_code == 0, passed.output
    report = json.loads(passed.stdout)
    assert report["decision"] == "pass" and report["verdict"]["checks"][0]["metric"] == "accuracy"
    refused = cli.invoke(app, ["gate", "clf:2"])
    assert refused.exit_code == 1 and refused.stdout.startswith("refused: clf:2:")
    assert len(refused.stdout.strip().splitlines()) == 1
    missing = cli.invoke(app, ["gate", "clf:9"])
    assert missing.exit_code == 2 and "could not decide" in missing.stdout

    assert cli.invoke(app, ["promote", "clf:1", "--to", "production"]).exit_code == 0
    no = cli.invoke(app, ["promote", "clf:2", "--to", "production"])
    assert no.exit_code == 1 and "failed its gate" in no.output
    forced = cli.invoke(app, ["promote", "clf:2", "--to", "production", "--force", "--reason", "demo"])
    assert forced.exit_code == 0 and "(forced)" in forced.stdout
    back = cli.invoke(app, ["rollback", "clf", "--alias", "production", "--reason", "bad"])
    assert back.exit_code == 0 and "version 2 -> version 1" in back.stdout

    shown = cli.invoke(app, ["registry", "show", "clf@production"])
    assert shown.exit_code == 0, shown.output
    history = shown.stdout.split("history, oldest first):")[1]
    assert "promote (forced)" in history and "rollback" in history and "release-bot" in history
