"""S3 configured the way boto3 users configure it, against the real SeaweedFS: named profiles in
AWS config files, session tokens, the standard endpoint variables, and a Content-Type per object."""

from __future__ import annotations

import pytest

from modelgate.settings import load_settings
from modelgate.stack.processes import free_port
from modelgate.storage import ObjectStore, StorageAuthError
from stack_env import AWS_SETTINGS


@pytest.fixture
def clean_aws_env(monkeypatch, tmp_path):
    """No AWS or endpoint settings from the outside; a local stack port where nothing listens."""
    for name in AWS_SETTINGS + ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("MODELGATE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MODELGATE_S3_PORT", str(free_port()))
    return monkeypatch


def test_named_profile_and_standard_endpoint_variable_reach_seaweedfs(
    clean_aws_env, tmp_path, s3_server, object_store
):
    config, credentials = tmp_path / "aws-config", tmp_path / "aws-credentials"
    config.write_text("[profile modelgate-test]\nregion = eu-west-3\n")
    credentials.write_text(
        "[modelgate-test]\n"
        f"aws_access_key_id = {s3_server.credentials.access_key}\n"
        f"aws_secret_access_key = {s3_server.credentials.secret_key}\n"
    )
    clean_aws_env.setenv("AWS_CONFIG_FILE", str(config))
    clean_aws_env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    clean_aws_env.setenv("AWS_PROFILE", "modelgate-test")
    clean_aws_env.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint)
    clean_aws_env.setenv("MODELGATE_BUCKET", object_store.bucket)

    store = ObjectStore.from_settings(load_settings())
    assert store.endpoint == s3_server.endpoint
    assert store.client.meta.region_name == "eu-west-3"  # region from the profile as well
    store.put_json("from-profile.json", {"ok": True})
    assert object_store.get_json("from-profile.json") == {"ok": True}


def test_session_token_is_sent_with_every_request(clean_aws_env, s3_server, object_store):
    token = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN"
    clean_aws_env.setenv("AWS_ACCESS_KEY_ID", s3_server.credentials.access_key)
    clean_aws_env.setenv("AWS_SECRET_ACCESS_KEY", s3_server.credentials.secret_key)
    clean_aws_env.setenv("AWS_SESSION_TOKEN", token)
    clean_aws_env.setenv("MODELGATE_S3_ENDPOINT", s3_server.endpoint)
    clean_aws_env.setenv("MODELGATE_BUCKET", object_store.bucket)

    store = ObjectStore.from_settings(load_settings())
    sent = []
    store.client.meta.events.register(
        "before-send.s3", lambda request, **_: sent.append(request.headers.get("X-Amz-Security-Token"))
    )
    # SeaweedFS issues no such token, so it refuses the temporary credentials: proof they were
    # sent as a whole (keys + token), as AWS needs them.
    with pytest.raises(StorageAuthError, match="refused the credentials"):
        store.ping()
    assert sent and all(header == token.encode() or header == token for header in sent), sent


@pytest.mark.parametrize(
    "variables, expected",
    [
        ({}, None),
        ({"AWS_ENDPOINT_URL": "http://global:1"}, "http://global:1"),
        ({"AWS_ENDPOINT_URL": "http://global:1", "AWS_ENDPOINT_URL_S3": "http://s3:2"}, "http://s3:2"),
        (
            {"AWS_ENDPOINT_URL_S3": "http://s3:2", "MODELGATE_S3_ENDPOINT": "http://ours:3"},
            "http://ours:3",
        ),
    ],
)
def test_endpoint_variables_and_their_precedence(clean_aws_env, variables, expected):
    for name, value in variables.items():
        clean_aws_env.setenv(name, value)
    settings = load_settings()
    assert settings.s3_endpoint == expected
    assert settings.uses_local_stack == (expected is None)
    assert settings.endpoint_url == (expected or f"http://127.0.0.1:{settings.s3_port}")


def test_endpoint_that_is_not_a_url_is_named(clean_aws_env):
    clean_aws_env.setenv("AWS_ENDPOINT_URL_S3", "localhost:8333")
    with pytest.raises(ValueError, match="AWS_ENDPOINT_URL_S3 must be an http"):
        load_settings()


def test_every_object_is_stored_with_its_content_type(object_store, tmp_path):
    expected = {
        "report.html": "text/html",
        "plots/roc.png": "image/png",
        "metrics.json": "application/json",
        "data/test.csv": "text/csv",
        "data/rows.jsonl": "application/x-ndjson",
        "features.npz": "application/octet-stream",
        "model.keras": "application/octet-stream",
        "model_card.md": "text/markdown",
    }
    for name in expected:
        path = tmp_path / "version" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x89PNG" if name.endswith(".png") else b"content")
    object_store.upload_dir(tmp_path / "version", "registry/m/versions/1")
    object_store.put_bytes("report/index.html", b"<html></html>")
    expected["index.html"] = "text/html"

    def stored(key: str) -> str:
        return object_store.client.head_object(Bucket=object_store.bucket, Key=key)["ContentType"]

    found = {name: stored(f"registry/m/versions/1/{name}") for name in expected if name != "index.html"}
    found["index.html"] = stored("report/index.html")
    assert {name: value.split(";")[0] for name, value in found.items()} == expected
