"""Fault campaign against the registry on a private SeaweedFS: a random mix of kill -9 during
register, concurrent registrations, alias races and tampering, then the figures.

    nice -n 10 .venv/bin/python benchmarks/fault_campaign.py --faults 40 [--seed 1]

Each fault is checked against what the registry promises: every visible version is whole (fetch
verifies every sha256), half versions are invisible and gc removes their files, concurrent writers
get distinct consecutive numbers, an alias race has exactly one winner, and a tampered version is
refused by gate and promote.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# After the path line above: the benchmarks run as scripts from benchmarks/, not as a package.
from modelgate.evaluation.bootstrap import MetricValue, metrics_to_dict  # noqa: E402
from modelgate.gate import evaluate_gate, load_gate_config  # noqa: E402
from modelgate.registry import AliasConflict, Registry  # noqa: E402
from modelgate.registry.gc import collect  # noqa: E402
from modelgate.registry.promotion import EXIT_PASS, PromotionRefused, check_gate, promote  # noqa: E402
from modelgate.settings import Credentials  # noqa: E402
from modelgate.stack.seaweedfs import WeedPorts, start_seaweedfs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GATE = {"thresholds": [{"metric": "accuracy", "min": 0.8}]}
KINDS = ("kill", "concurrent", "race", "tamper")
_REGISTER = """
import sys
from pathlib import Path
from modelgate.registry import Registry
registry, files = Registry.from_settings(), Path(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()  # released together with the others
while True:
    print(registry.register(sys.argv[1], files, {}).version, flush=True)
    if sys.argv[3] == "once":
        break
"""


def candidate_files(root: Path, accuracy: float, megabytes: int) -> tuple[Path, dict]:
    """A version directory (model + metrics.json with a real verdict) and its manifest fields."""
    metrics = metrics_to_dict({"accuracy": MetricValue("accuracy", accuracy, accuracy - 0.01, accuracy + 0.01, 500)})
    verdict = evaluate_gate({"accuracy": MetricValue("accuracy", accuracy, accuracy - 0.01, accuracy + 0.01, 500)},
                            load_gate_config(GATE)).to_dict()
    directory = Path(tempfile.mkdtemp(dir=root))
    (directory / "model.keras").write_bytes(os.urandom(megabytes * 1024 * 1024 + 100))
    (directory / "metrics.json").write_text(json.dumps({"metrics": metrics, "verdict": verdict}))
    status = "passed" if verdict["decision"] == "pass" else "failed"
    return directory, {"metrics": metrics, "verdict": verdict, "status": status}


def spawn(model: str, files: Path, mode: str) -> subprocess.Popen:
    """A registering process, started and ready; write a line to its stdin to release it."""
    process = subprocess.Popen([sys.executable, "-c", _REGISTER, model, str(files), mode], cwd=ROOT,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    return process


def release(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.stdin.write("go\n")
        process.stdin.flush()


def whole(registry: Registry, model: str, cache: Path) -> tuple[int, int]:
    """(usable versions, visible versions that fail verification) with a fresh cache."""
    fresh = Registry(registry.store, cache_dir=cache / secrets.token_hex(4))
    lost = 0
    versions = fresh.list_versions(model)
    for version in versions:
        try:
            fresh.fetch(model, version)
        except Exception:
            lost += 1
    return len(versions) - lost, lost


def fault_kill(registry, rng, root, figures) -> bool:
    files, _ = candidate_files(root, 0.9, megabytes=4)
    process = spawn("killed", files, "loop")
    release([process])
    time.sleep(rng.uniform(0.1, 1.5))
    process.send_signal(signal.SIGKILL)
    process.wait()
    _, lost = whole(registry, "killed", root)
    claimed = len(registry.store.list_prefixes("registry/killed/versions/"))
    figures["half_versions"] = claimed - len(registry.list_versions("killed"))
    figures["lost_versions"] += lost
    return lost == 0


def fault_concurrent(registry, rng, root, figures) -> bool:
    model = f"conc-{secrets.token_hex(3)}"
    files, _ = candidate_files(root, 0.9, megabytes=0)
    processes = [spawn(model, files, "once") for _ in range(rng.randint(3, 5))]
    release(processes)
    numbers = sorted(int(p.communicate()[0].split()[-1]) for p in processes)
    usable, lost = whole(registry, model, root)
    figures["lost_versions"] += lost
    right = numbers == list(range(1, len(processes) + 1)) and usable == len(processes)
    figures["wrong_verdicts"] += not right
    return right


def fault_race(registry, rng, root, figures) -> bool:
    model = f"race-{secrets.token_hex(3)}"
    for _ in range(4):
        files, fields = candidate_files(root, 0.9, megabytes=0)
        registry.register(model, files, fields)
    first = registry.set_alias(model, "production", 1, actor="c", reason="r", expected_etag=None)
    barrier, outcomes = threading.Barrier(3), []

    def move(version):
        barrier.wait()
        try:
            registry.set_alias(model, "production", version, actor="c", reason="r", expected_etag=first.etag)
            outcomes.append(version)
        except AliasConflict:
            pass

    threads = [threading.Thread(target=move, args=(v,)) for v in (2, 3, 4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    right = len(outcomes) == 1 and registry.get_alias(model, "production").version == outcomes[0]
    figures["wrong_verdicts"] += not right
    return right


def fault_tamper(registry, rng, root, figures) -> bool:
    model = f"tamper-{secrets.token_hex(3)}"
    files, fields = candidate_files(root, rng.choice([0.5, 0.9]), megabytes=0)
    version = registry.register(model, files, fields).version
    prefix = f"registry/{model}/versions/{version}/"
    store, how = registry.store, rng.choice(["model-byte", "manifest-metrics", "manifest-status", "metrics-json"])
    if how == "model-byte":
        data = store.get_bytes(prefix + "model.keras")
        store.put_bytes(prefix + "model.keras", data[:-1] + bytes([data[-1] ^ 1]))
    elif how == "metrics-json":
        store.put_bytes(prefix + "metrics.json", store.get_bytes(prefix + "metrics.json").replace(b"0.", b"0.9", 1))
    else:
        manifest = store.get_json(prefix + "manifest.json")
        if how == "manifest-metrics":
            manifest["metrics"]["accuracy"]["value"] += 0.05
        else:  # the opposite of what the gate decided
            manifest["status"] = "failed" if manifest["status"] == "passed" else "passed"
        store.put_json(prefix + "manifest.json", manifest)
    figures["tampered_" + how] += 1
    fresh = Registry(store, cache_dir=root / secrets.token_hex(4))
    gate_refused = check_gate(fresh, f"{model}:{version}").exit_code != EXIT_PASS
    try:
        promote(fresh, f"{model}:{version}", "production", actor="campaign")
        promote_refused = False
    except PromotionRefused:
        promote_refused = True
    figures["wrong_verdicts"] += (not gate_refused) + (not promote_refused)
    return gate_refused and promote_refused


def campaign(registry: Registry, faults: int, seed: int, root: Path) -> dict:
    rng, figures = random.Random(seed), Counter()
    started = time.monotonic()
    for _ in range(faults):
        kind = rng.choice(KINDS)
        survived = {"kill": fault_kill, "concurrent": fault_concurrent, "race": fault_race,
                    "tamper": fault_tamper}[kind](registry, rng, root, figures)
        figures["tries"] += 1
        figures[f"tries_{kind}"] += 1
        figures["survived"] += survived
    time.sleep(1.5)
    report = collect(registry, "killed", timedelta(seconds=1))
    figures["gc_collected"] = len(report.collected)
    figures["gc_bytes"] = sum(h.bytes for h in report.collected)
    leftover = [p for p in registry.store.list_prefixes("registry/killed/versions/")
                if len(list(registry.store.list_keys(p))) > 1 and not registry.store.exists(p + "manifest.json")]
    figures["half_left_after_gc"] = len(leftover)
    figures["seconds"] = round(time.monotonic() - started, 1)
    return dict(sorted(figures.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fault-campaign-") as tmp:
        root = Path(tmp)
        credentials = Credentials("CAMPAIGN" + secrets.token_hex(6).upper(), secrets.token_urlsafe(24))
        server = start_seaweedfs(root / "weed", WeedPorts.free(), credentials, root / "weed.log")
        try:
            os.environ.update({"MODELGATE_S3_ENDPOINT": server.endpoint, "MODELGATE_BUCKET": "campaign",
                               "AWS_ACCESS_KEY_ID": credentials.access_key,
                               "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
                               "MODELGATE_HOME": str(root / "home")})
            store = server.store("campaign")
            store.ensure_bucket()
            figures = campaign(Registry(store, cache_dir=root / "cache"), args.faults, args.seed, root)
        finally:
            server.stop()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
