"""The registry against a real SeaweedFS: version numbering under concurrency and crashes,
integrity checks on fetch, aliases moved with If-Match."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from modelgate.registry import (
    AliasConflict,
    IntegrityError,
    InvalidReference,
    ModelNotFound,
    ModelRef,
    Registry,
    parse_ref,
)
from modelgate.storage import sha256_bytes

REPO_ROOT = Path(__file__).resolve().parents[1]


def make_files(root: Path, payload: str) -> Path:
    """A small version directory: a model file, an asset in a sub-folder, a report."""
    (root / "assets").mkdir(parents=True)
    (root / "model.keras").write_bytes(f"weights of {payload}".encode() * 50)
    (root / "assets" / "vocab.txt").write_text(f"[PAD]\n[UNK]\n{payload}\n")
    (root / "metrics.json").write_text(f'{{"accuracy": 0.9, "writer": "{payload}"}}')
    return root


@pytest.fixture
def registry(object_store, tmp_path) -> Registry:
    return Registry(object_store, cache_dir=tmp_path / "cache")


def test_versions_are_numbered_from_one_in_order(registry, tmp_path):
    created = [
        registry.register("intent-ood", make_files(tmp_path / f"v{i}", f"run-{i}"), {"run": i})
        for i in range(3)
    ]
    assert [v.version for v in created] == [1, 2, 3]
    assert registry.list_versions("intent-ood") == [1, 2, 3]
    assert registry.list_models() == ["intent-ood"]

    manifest = registry.get_manifest("intent-ood", 2)
    assert manifest["run"] == 1 and manifest["model"] == "intent-ood" and manifest["version"] == 2
    model_bytes = (tmp_path / "v1" / "model.keras").read_bytes()
    expected = {"sha256": sha256_bytes(model_bytes), "size": len(model_bytes)}
    assert manifest["files"]["model.keras"] == expected
    assert set(manifest["files"]) == {"model.keras", "assets/vocab.txt", "metrics.json"}
    assert created[1].uri == f"s3://{registry.store.bucket}/registry/intent-ood/versions/2/"

    assert registry.resolve("intent-ood").version == 3
    assert registry.resolve("intent-ood:1").manifest["run"] == 0
    with pytest.raises(ModelNotFound, match="intent-ood:9"):
        registry.resolve("intent-ood:9")
    with pytest.raises(ModelNotFound, match="no version"):
        registry.resolve("other-model")


def test_register_refuses_bad_input(registry, tmp_path):
    files = make_files(tmp_path / "files", "x")
    with pytest.raises(InvalidReference, match="Bad_Model"):
        registry.register("Bad_Model", files, {})
    with pytest.raises(ValueError, match="version"):
        registry.register("good", files, {"version": 7})
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        registry.register("good", tmp_path / "empty", {})
    assert registry.list_versions("good") == []


_WRITER = """
import sys, time
from pathlib import Path
from modelgate.registry import Registry
files, go, ready, writer = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
registry = Registry.from_settings()
registry.store.ping()
ready.touch()
while not go.exists():
    time.sleep(0.005)
print(registry.register("shared", files, {"writer": writer}).version)
"""


def test_concurrent_registrations_get_distinct_versions_with_intact_files(
    registry, modelgate_env, tmp_path
):
    go = tmp_path / "go"
    children = []
    for i in range(3):  # three processes ...
        files = make_files(tmp_path / f"proc-{i}", f"proc-{i}")
        ready = tmp_path / f"ready-{i}"
        cmd = [sys.executable, "-c", _WRITER, str(files), str(go), str(ready), f"proc-{i}"]
        process = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
        children.append((process, ready))
    deadline = time.monotonic() + 120
    while not all(ready.exists() for _, ready in children):
        assert time.monotonic() < deadline, "writer processes did not start"
        assert all(p.poll() is None for p, _ in children), "a writer process died early"
        time.sleep(0.05)

    results: dict[str, int] = {}
    errors: list[BaseException] = []

    def thread_writer(name: str) -> None:  # ... and three threads, all released at once
        files = make_files(tmp_path / name, name)
        while not go.exists():
            time.sleep(0.005)
        try:
            results[name] = registry.register("shared", files, {"writer": name}).version
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=thread_writer, args=(f"thread-{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    go.touch()
    for thread in threads:
        thread.join(timeout=120)
    for i, (process, _) in enumerate(children):
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0
        results[f"proc-{i}"] = int(out.strip())
    assert not errors

    assert sorted(results.values()) == [1, 2, 3, 4, 5, 6]
    assert registry.list_versions("shared") == [1, 2, 3, 4, 5, 6]
    for writer, version in results.items():
        assert registry.get_manifest("shared", version)["writer"] == writer
        fetched = registry.fetch("shared", version)
        for rel in ("assets/vocab.txt", "model.keras"):
            assert (fetched / rel).read_bytes() == (tmp_path / writer / rel).read_bytes()


_CRASHER = """
import os, signal, sys
from pathlib import Path
from modelgate.registry import Registry
files = Path(sys.argv[1])
registry = Registry.from_settings()
version = registry.claim_version("crashy")
registry.upload_files("crashy", version, files, sorted(p for p in files.rglob("*") if p.is_file()))
print(version, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # dies before the manifest is written
"""


def test_crash_before_manifest_leaves_no_version_and_number_is_not_reused(
    registry, modelgate_env, tmp_path
):
    registry.register("crashy", make_files(tmp_path / "first", "first"), {})
    crashed = subprocess.run(
        [sys.executable, "-c", _CRASHER, str(make_files(tmp_path / "lost", "lost"))],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert crashed.stdout.strip() == "2"
    # The files were uploaded, yet version 2 does not exist.
    assert registry.store.exists("registry/crashy/versions/2/model.keras")
    assert registry.list_versions("crashy") == [1]
    assert registry.resolve("crashy").version == 1
    with pytest.raises(ModelNotFound):
        registry.get_manifest("crashy", 2)

    after = registry.register("crashy", make_files(tmp_path / "next", "next"), {})
    assert after.version == 3
    assert registry.list_versions("crashy") == [1, 3]
    assert registry.get_manifest("crashy", 3)["files"]["model.keras"]["sha256"] == sha256_bytes(
        (tmp_path / "next" / "model.keras").read_bytes()
    )


def test_fetch_verifies_every_file(registry, object_store, tmp_path):
    files = make_files(tmp_path / "files", "good")
    registry.register("tox", files, {})
    original = (files / "model.keras").read_bytes()

    cached = registry.fetch("tox", 1)
    assert (cached / "model.keras").read_bytes() == original
    # A corrupted cache copy is detected and fetched again.
    (cached / "model.keras").write_bytes(b"bit rot")
    copy = registry.fetch("tox", 1, tmp_path / "copy")
    assert (copy / "model.keras").read_bytes() == original
    assert (cached / "model.keras").read_bytes() == original
    assert (copy / "manifest.json").exists()

    # Tampering in the bucket is caught by any fresh reader.
    object_store.put_bytes("registry/tox/versions/1/model.keras", original[:-1] + b"!")
    fresh = Registry(object_store, cache_dir=tmp_path / "fresh-cache")
    with pytest.raises(IntegrityError, match="model.keras"):
        fresh.fetch("tox", 1)
    object_store.delete("registry/tox/versions/1/assets/vocab.txt")
    with pytest.raises(IntegrityError, match="assets/vocab.txt.*missing"):
        Registry(object_store, cache_dir=tmp_path / "other-cache").fetch("tox", 1)


def test_alias_moves_with_if_match_and_is_audited(registry, tmp_path):
    for i in range(3):
        registry.register("nli", make_files(tmp_path / f"v{i}", f"v{i}"), {})
    assert registry.get_alias("nli", "production") is None

    created = registry.set_alias(
        "nli", "production", 1, actor="ci", reason="first", expected_etag=None
    )
    with pytest.raises(AliasConflict, match="production exists"):
        registry.set_alias("nli", "production", 2, actor="bob", reason="x", expected_etag=None)

    # Two writers read the same ETag; the first move wins, the second is refused by S3.
    seen = registry.get_alias("nli", "production")
    assert seen.version == 1 and seen.etag == created.etag
    winner = registry.set_alias(
        "nli", "production", 2, actor="alice", reason="better", expected_etag=seen.etag
    )
    with pytest.raises(AliasConflict, match="nli@production changed"):
        registry.set_alias("nli", "production", 3, actor="bob", reason="x", expected_etag=seen.etag)

    now = registry.get_alias("nli", "production")
    assert now.version == 2 and now.etag == winner.etag and now.actor == "alice"
    assert [h["version"] for h in now.history] == [1, 2]
    assert now.history[-1]["previous_version"] == 1
    assert registry.resolve("nli@production").version == 2
    events = registry.audit_events("nli")
    assert [(e["version"], e["actor"]) for e in events] == [(1, "ci"), (2, "alice")]

    with pytest.raises(ModelNotFound):
        registry.set_alias("nli", "production", 99, actor="x", reason="y", expected_etag=now.etag)
    with pytest.raises(ModelNotFound, match="staging"):
        registry.resolve("nli@staging")


_DIES_BEFORE_ALIAS_WRITE = """
import os, signal, sys
from modelgate.registry import Registry
from modelgate.storage import ObjectStore

real_put = ObjectStore.put_json

def put_json(self, key, payload, **kwargs):
    if "/aliases/" in key:  # the process dies between the audit event and the alias write
        os.kill(os.getpid(), signal.SIGKILL)
    return real_put(self, key, payload, **kwargs)

ObjectStore.put_json = put_json
registry = Registry.from_settings()
current = registry.get_alias("nli", "production")
registry.set_alias("nli", "production", 2, actor="crasher", reason="r", expected_etag=current.etag)
"""


def test_a_failure_between_event_and_alias_write_leaves_log_and_alias_agreeing(
    registry, modelgate_env, tmp_path
):
    for i in range(3):
        registry.register("nli", make_files(tmp_path / f"v{i}", f"v{i}"), {})
    first = registry.set_alias("nli", "production", 1, actor="ci", reason="go", expected_etag=None)

    crashed = subprocess.run([sys.executable, "-c", _DIES_BEFORE_ALIAS_WRITE], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=120)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    # A lost race also fails between the two writes (the alias write is refused by S3).
    with pytest.raises(AliasConflict):
        registry.set_alias("nli", "production", 3, actor="late", reason="r", expected_etag="stale")

    alias = registry.get_alias("nli", "production")
    assert alias.version == 1 and alias.etag == first.etag
    applied = registry.audit_events("nli")
    assert [(e["version"], e["actor"]) for e in applied] == [(1, "ci")]
    assert [e["event_id"] for e in applied] == [h["event_id"] for h in alias.history]
    everything = registry.audit_events("nli", include_unapplied=True)
    assert sorted((e["actor"], e["applied"]) for e in everything) == [
        ("ci", True), ("crasher", False), ("late", False)
    ]

    moved = registry.set_alias("nli", "production", 3, actor="ops", reason="r", expected_etag=first.etag)
    assert [e["actor"] for e in registry.audit_events("nli")] == ["ci", "ops"]
    assert registry.audit_events("nli")[-1]["event_id"] == moved.history[-1]["event_id"]


def test_simultaneous_alias_moves_exactly_one_wins(registry, tmp_path):
    for i in range(3):
        registry.register("sim", make_files(tmp_path / f"v{i}", f"v{i}"), {})
    first = registry.set_alias("sim", "production", 1, actor="ci", reason="go", expected_etag=None)
    barrier = threading.Barrier(2)
    outcomes: dict[int, object] = {}

    def move(version: int) -> None:
        barrier.wait()
        try:
            outcomes[version] = registry.set_alias(
                "sim", "production", version, actor=f"w{version}", reason="race",
                expected_etag=first.etag,
            )  # fmt: skip
        except AliasConflict as exc:
            outcomes[version] = exc

    threads = [threading.Thread(target=move, args=(v,)) for v in (2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    conflicts = [v for v, o in outcomes.items() if isinstance(o, AliasConflict)]
    winners = [v for v, o in outcomes.items() if not isinstance(o, AliasConflict)]
    assert len(conflicts) == 1 and len(winners) == 1
    final = registry.get_alias("sim", "production")
    assert final.version == winners[0]
    assert [h["version"] for h in final.history] == [1, winners[0]]
    assert len(registry.audit_events("sim")) == 2


def test_parse_ref_accepts_the_three_forms():
    assert parse_ref("intent-ood") == ModelRef("intent-ood")
    assert parse_ref("intent-ood:12") == ModelRef("intent-ood", version=12)
    assert parse_ref("intent-ood@production") == ModelRef("intent-ood", alias="production")
    assert str(parse_ref("nli:3")) == "nli:3" and str(parse_ref("nli@prod")) == "nli@prod"


@pytest.mark.parametrize(
    "ref, message",
    [
        ("", "malformed"),
        ("nli:", "version ''"),
        ("nli:0", "version '0'"),
        ("nli:two", "version 'two'"),
        ("nli:-1", "version '-1'"),
        ("nli@", "invalid alias ''"),
        ("nli@Prod", "invalid alias 'Prod'"),
        ("nli:1@prod", "malformed"),
        ("nli@prod:1", "malformed"),
        ("NLI", "invalid model name 'NLI'"),
        ("my model", "invalid model name"),
        ("-nli", "invalid model name"),
        ("nli_v2:1", "invalid model name 'nli_v2'"),
        ("intent-ood:\uff11", "version '\uff11' is not an integer from 1"),  # full-width 1
        ("intent-ood:\u00b2", "version '\u00b2' is not an integer from 1"),  # superscript 2
        ("intent-ood:\u0661", "ASCII digits"),  # Arabic-Indic 1
    ],
)
def test_parse_ref_rejects_malformed_refs(ref, message):
    with pytest.raises(InvalidReference, match=message):
        parse_ref(ref)
