"""Faults against a real SeaweedFS, kept in the suite: many writers at once, kill -9 at random
points of register (and gc afterwards), alias races between processes. Each test is bounded."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from modelgate.cli import app
from modelgate.registry import Registry
from modelgate.registry.gc import collect, parse_duration

REPO_ROOT = Path(__file__).resolve().parents[1]
WRITERS = 10

_REGISTER = """
import sys, time
from pathlib import Path
from modelgate.registry import Registry
files, loop, go, ready = Path(sys.argv[1]), sys.argv[2] == "loop", Path(sys.argv[3]), Path(sys.argv[4])
registry = Registry.from_settings()
registry.store.ping()
ready.touch()
while not go.exists():
    time.sleep(0.005)
while True:
    print(registry.register("faulty", files, {"writer": files.name}).version, flush=True)
    if not loop:
        break
"""

_MOVE_ALIAS = """
import sys, time
from pathlib import Path
from modelgate.registry import AliasConflict, Registry
version, etag, go, ready = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
registry = Registry.from_settings()
registry.store.ping()
ready.touch()
while not go.exists():
    time.sleep(0.005)
try:
    registry.set_alias("faulty", "production", version, actor=f"p{version}", reason="race",
                       expected_etag=etag)
    print("won")
except AliasConflict:
    print("lost")
"""


@pytest.fixture
def registry(modelgate_env, object_store, tmp_path) -> Registry:
    return Registry(object_store, cache_dir=tmp_path / "cache")


def version_files(root: Path, name: str, megabytes: int = 0) -> Path:
    directory = root / name
    (directory / "assets").mkdir(parents=True)
    (directory / "model.keras").write_bytes(random.randbytes(megabytes * 1024 * 1024 + 1000))
    (directory / "assets" / "vocab.txt").write_text(f"{name}\n")
    (directory / "metrics.json").write_text('{"metrics": {}}')
    return directory


def start_all(commands: list[list[str]], sync: Path, timeout: float = 180):
    """Start every process (script, args...; then the go and ready paths in ``sync``), wait until
    each is ready (Python start-up is slow on a loaded machine: generous), then release them at once."""
    sync.mkdir(parents=True, exist_ok=True)
    go = sync / "go"
    processes, readies = [], []
    for i, (script, *args) in enumerate(commands):
        ready = sync / f"ready-{i}"
        command = [sys.executable, "-c", script, *args, str(go), str(ready)]
        processes.append(subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True))
        readies.append(ready)
    deadline = time.monotonic() + timeout
    while not all(r.exists() for r in readies):
        assert time.monotonic() < deadline, "processes did not start in time"
        assert all(p.poll() is None for p in processes), "a process died before the start"
        time.sleep(0.05)
    go.touch()
    return processes


def test_ten_concurrent_registration_processes_get_consecutive_complete_versions(registry, tmp_path):
    commands = [[_REGISTER, str(version_files(tmp_path, f"w{i}")), "once"] for i in range(WRITERS)]
    processes = start_all(commands, tmp_path / "sync")
    released = time.monotonic()
    versions = {}
    for i, process in enumerate(processes):
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        versions[f"w{i}"] = int(out.strip())
    assert sorted(versions.values()) == list(range(1, WRITERS + 1))
    assert registry.list_versions("faulty") == list(range(1, WRITERS + 1))
    for writer, version in versions.items():
        manifest = registry.get_manifest("faulty", version)
        assert manifest["writer"] == writer
        assert set(manifest["files"]) == {"model.keras", "assets/vocab.txt", "metrics.json"}
        fetched = registry.fetch("faulty", version)
        assert (fetched / "model.keras").read_bytes() == (tmp_path / writer / "model.keras").read_bytes()
    assert time.monotonic() - released < 60


def test_kill_9_at_random_points_never_leaves_a_usable_half_version_and_gc_cleans_up(registry, tmp_path):
    rng = random.Random(7)
    files = version_files(tmp_path, "big", megabytes=4)
    for attempt in range(3):  # a writer registering in a loop, killed at a random moment
        [process] = start_all([[_REGISTER, str(files), "loop"]], tmp_path / f"sync-{attempt}")
        time.sleep(rng.uniform(0.2, 2.0))
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
        assert process.returncode == -signal.SIGKILL

    committed = registry.list_versions("faulty")
    claimed = [int(p.rstrip("/").rsplit("/", 1)[1])
               for p in registry.store.list_prefixes("registry/faulty/versions/")]
    for version in committed:  # every visible version is whole
        assert (registry.fetch("faulty", version) / "model.keras").read_bytes() == (files / "model.keras").read_bytes()
    half = sorted(set(claimed) - set(committed))
    assert half, "no kill landed inside register (between claim and manifest)"

    assert collect(registry, "faulty", parse_duration("1h")).collected == []  # in-flight grace
    time.sleep(1.5)
    dry = collect(registry, "faulty", parse_duration("1s"), dry_run=True)
    with_files = sorted(h.version for h in dry.collected)
    assert set(with_files) <= set(half)
    assert all(registry.store.exists(f"registry/faulty/versions/{v}/.claim") for v in half)
    cleaned = CliRunner().invoke(app, ["registry", "gc", "faulty", "--older-than", "1s"])
    assert cleaned.exit_code == 0, cleaned.output
    assert f"{len(with_files)} half versions" in cleaned.output
    for version in half:  # only the claim is left, marked collected
        keys = list(registry.store.list_keys(f"registry/faulty/versions/{version}/"))
        assert keys == [f"registry/faulty/versions/{version}/.claim"]
        assert "collected_at" in registry.store.get_json(keys[0])
    assert registry.list_versions("faulty") == committed
    for version in committed:
        assert Registry(registry.store, cache_dir=tmp_path / f"fresh-{version}").fetch("faulty", version)
    after = registry.register("faulty", files, {})
    assert after.version == max(claimed) + 1  # numbers are never reused


def test_gc_refuses_a_bad_duration_and_a_late_commit_into_a_collected_claim(registry, tmp_path):
    bad = CliRunner().invoke(app, ["registry", "gc", "--older-than", "soon"])
    assert bad.exit_code == 2 and "invalid duration 'soon'" in bad.output
    files = version_files(tmp_path, "slow")
    number = registry.claim_version("faulty")
    uploaded = registry.upload_files("faulty", number, files, sorted(p for p in files.rglob("*") if p.is_file()))
    time.sleep(1.5)
    assert [h.version for h in collect(registry, None, parse_duration("1s")).collected] == [number]
    with pytest.raises(Exception, match="collected by `registry gc`"):
        registry.commit_version("faulty", number, uploaded, {})
    assert registry.list_versions("faulty") == []


def test_alias_races_between_processes_have_exactly_one_winner(registry, tmp_path):
    for i in range(5):
        registry.register("faulty", version_files(tmp_path, f"v{i}"), {})
    first = registry.set_alias("faulty", "production", 1, actor="ci", reason="go", expected_etag=None)
    commands = [[_MOVE_ALIAS, str(v), first.etag] for v in (2, 3, 4, 5)]
    processes = start_all(commands, tmp_path / "sync")
    outcomes = [p.communicate(timeout=60)[0].strip() for p in processes]
    assert sorted(outcomes) == ["lost", "lost", "lost", "won"]
    winner = (2, 3, 4, 5)[outcomes.index("won")]
    alias = registry.get_alias("faulty", "production")
    assert alias.version == winner and [h["version"] for h in alias.history] == [1, winner]
    assert [e["version"] for e in registry.audit_events("faulty")] == [1, winner]
    assert len(registry.audit_events("faulty", include_unapplied=True)) == 5
