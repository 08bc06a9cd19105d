"""Gate, promote and predict decide from verified content only (real SeaweedFS, the real CLI):
a flipped byte, an edited manifest, edited metrics, a missing or wrong signature are refused with
a line that names what disagrees."""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil

import pytest
from typer.testing import CliRunner

from candidates import register_candidate
from modelgate.cli import app
from modelgate.registry import Registry
from modelgate.registry.signing import KEY_ENV, KEY_FILE_ENV, SigningKeyError, load_signing_key

MANIFEST = "registry/clf/versions/{}/manifest.json"


@pytest.fixture
def registry(modelgate_env, object_store, tmp_path) -> Registry:
    return Registry(object_store, cache_dir=tmp_path / "writer-cache")


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def edit_manifest(store, version: int, change) -> None:
    """What a writer with bucket access can do: rewrite manifest.json in place."""
    manifest = store.get_json(MANIFEST.format(version))
    change(manifest)
    store.put_json(MANIFEST.format(version), manifest)


def flip_last_byte(store, key: str) -> None:
    data = store.get_bytes(key)
    store.put_bytes(key, data[:-1] + bytes([data[-1] ^ 0x01]))


def test_a_flipped_byte_in_the_model_is_refused_by_gate_promote_and_predict(registry, object_store):
    register_candidate(registry, registry.cache_dir.parent, "clf", 0.90)
    flip_last_byte(object_store, "registry/clf/versions/1/model.keras")

    gate = cli("gate", "clf:1")
    assert gate.exit_code == 1 and "failed verification" in gate.output and "model.keras" in gate.output
    promoted = cli("promote", "clf:1", "--to", "production")
    assert promoted.exit_code == 1, promoted.output
    assert "failed verification" in promoted.output and "'model.keras' has sha256" in promoted.output
    forced = cli("promote", "clf:1", "--to", "production", "--force", "--reason", "x")
    assert forced.exit_code == 1 and "failed verification" in forced.output  # --force never overrides
    predicted = cli("predict", "clf:1", "hello")
    assert predicted.exit_code == 2 and "'model.keras' has sha256" in predicted.output
    assert registry.get_alias("clf", "production") is None


def test_a_failed_version_whose_manifest_says_passed_is_not_promoted(registry, object_store):
    register_candidate(registry, registry.cache_dir.parent, "clf", 0.50)  # fails the 0.80 gate

    def bless(manifest):
        manifest["status"] = "passed"
        manifest["verdict"]["decision"] = "pass"

    edit_manifest(object_store, 1, lambda m: m.update(status="passed"))
    promoted = cli("promote", "clf:1", "--to", "production")
    assert promoted.exit_code == 1, promoted.output
    assert "manifest.json field 'status' is 'passed'" in promoted.output
    edit_manifest(object_store, 1, bless)
    promoted = cli("promote", "clf:1", "--to", "production")
    assert promoted.exit_code == 1 and "field 'verdict.decision'" in promoted.output
    assert cli("gate", "clf:1").exit_code == 1
    assert registry.get_alias("clf", "production") is None


def test_the_gate_recheck_uses_metrics_json_not_the_manifest(registry, object_store, modelgate_env):
    root = registry.cache_dir.parent
    register_candidate(registry, root, "clf", 0.90)
    register_candidate(registry, root, "clf", 0.95)
    assert cli("promote", "clf:2", "--to", "production").exit_code == 0
    refused = cli("gate", "clf:1")  # drops 0.05 accuracy against production now
    assert refused.exit_code == 1 and "re-checked now" in refused.output

    edit_manifest(object_store, 1, lambda m: m["metrics"]["accuracy"].update(value=0.97))
    tampered = cli("gate", "clf:1")
    assert tampered.exit_code == 1, tampered.output
    assert "manifest.json field 'metrics.accuracy.value' disagrees with the verified metrics.json" in tampered.output

    # metrics.json edited too: its sha256 no longer matches the manifest.
    key = "registry/clf/versions/1/metrics.json"
    content = json.loads(object_store.get_bytes(key))
    content["metrics"]["accuracy"]["value"] = 0.97
    object_store.put_bytes(key, json.dumps(content).encode())
    shutil.rmtree(modelgate_env / "cache")  # a fresh runner: the verified local copy is gone
    both = cli("gate", "clf:1")
    assert both.exit_code == 1 and "'metrics.json' has sha256" in both.output


def test_a_tampered_baseline_leaves_the_gate_undecided(registry, object_store):
    root = registry.cache_dir.parent
    register_candidate(registry, root, "clf", 0.95)
    assert cli("promote", "clf:1", "--to", "production").exit_code == 0
    register_candidate(registry, root, "clf", 0.90)  # 0.05 below production: refused
    # Lowering production's manifest metrics would let the candidate through the change threshold.
    edit_manifest(object_store, 1, lambda m: m["metrics"]["accuracy"].update(value=0.5))
    decision = cli("gate", "clf:2")
    assert decision.exit_code == 2, decision.output
    assert "baseline clf:1 (@production) cannot be trusted" in decision.output


def test_with_a_key_versions_are_signed_and_bucket_writers_cannot_bless_one(
    registry, object_store, monkeypatch
):
    root = registry.cache_dir.parent
    register_candidate(registry, root, "clf", 0.90)  # before any key: unsigned
    shown = cli("registry", "show", "clf:1")
    assert shown.exit_code == 0 and "signature: unsigned" in shown.output

    key = secrets.token_hex(32)
    monkeypatch.setenv(KEY_ENV, key)
    register_candidate(registry, root, "clf", 0.91)  # signed at registration
    signed = object_store.get_json(MANIFEST.format(2))["signature"]
    assert signed["algorithm"] == "hmac-sha256" and key not in json.dumps(signed)
    assert "verified" in cli("registry", "show", "clf:2").output
    assert cli("gate", "clf:2").exit_code == 0

    unsigned = cli("promote", "clf:1", "--to", "production")
    assert unsigned.exit_code == 1 and "clf:1 is unsigned: a signing key is configured" in unsigned.output

    # A writer swaps the model and fixes the manifest's hash: consistent, but not signed by them.
    new_model = b"backdoored weights"
    object_store.put_bytes("registry/clf/versions/2/model.keras", new_model)
    digest = hashlib.sha256(new_model).hexdigest()
    edit_manifest(object_store, 2, lambda m: m["files"]["model.keras"].update(sha256=digest, size=len(new_model)))
    for args, code in ((("gate", "clf:2"), 1), (("promote", "clf:2", "--to", "production"), 1),
                       (("predict", "clf:2", "hello"), 2)):
        result = cli(*args)
        assert result.exit_code == code, result.output
        assert "signature (key id" in result.output and "does not match" in result.output
        assert key not in result.output
    assert "INVALID" in cli("registry", "show", "clf:2").output

    monkeypatch.setenv(KEY_ENV, secrets.token_hex(32))  # another key: every signature is foreign
    assert cli("gate", "clf:2").exit_code == 1
    monkeypatch.delenv(KEY_ENV)
    # Without a key the consistent rewrite is not caught: what the signature is for.
    assert "not verified: no signing key configured" in cli("registry", "show", "clf:2").output
    assert cli("gate", "clf:2").exit_code == 0


def test_signing_key_configuration_errors_are_one_clear_line(tmp_path):
    short = tmp_path / "key"
    short.write_text("short\n")
    with pytest.raises(SigningKeyError, match="shorter than 16 bytes"):
        load_signing_key({KEY_FILE_ENV: str(short)})
    with pytest.raises(SigningKeyError, match="not both"):
        load_signing_key({KEY_ENV: "x" * 32, KEY_FILE_ENV: str(short)})
    with pytest.raises(SigningKeyError, match="cannot read"):
        load_signing_key({KEY_FILE_ENV: str(tmp_path / "missing")})
    short.write_text("k" * 40 + "\n")
    from_file = load_signing_key({KEY_FILE_ENV: str(short)})
    assert from_file.key_id == load_signing_key({KEY_ENV: "k" * 40}).key_id
    assert "k" * 40 not in repr(from_file)
    assert load_signing_key({}) is None
