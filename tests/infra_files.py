"""The files under infra/ and what the infra tests need to read them: compose's interpolation,
every string of a parsed tree, the Kubernetes job template, the project's pins."""

from __future__ import annotations

import json
import re
import time
import tomllib
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
COMPOSE_FILE = INFRA / "docker-compose.yml"
ENV_EXAMPLE = INFRA / ".env.example"
DOCKERFILE = INFRA / "docker" / "Dockerfile"
JOB_TEMPLATE = INFRA / "k8s" / "base-job-template.json"
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}
REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")
CREDENTIAL_NAME = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|AUTH_STRING|TOKEN", re.IGNORECASE)
WORKERS = ("cpu-worker", "gpu-worker")


def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def env_example() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation of one string, enough for this file's references."""

    def value(match: re.Match) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        current = env.get(name)
        if op and op.endswith("-") and not current:
            return arg
        if op and op.endswith("?") and not current:
            raise KeyError(f"{name}: {arg}")
        return current or ""

    return REFERENCE.sub(value, text.replace("$$", "\0")).replace("\0", "$")


def strings_in(node, path=""):
    """(path, string) for every string in a parsed YAML/JSON tree."""
    if isinstance(node, dict):
        for key, child in node.items():
            yield from strings_in(child, f"{path}/{key}")
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from strings_in(child, f"{path}/{i}")
    elif isinstance(node, str):
        yield path, node


def without_references(text: str) -> str:
    return REFERENCE.sub("", text)



def job_template() -> dict:
    return json.loads(JOB_TEMPLATE.read_text())



def pyproject_pin(package: str) -> str:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [d.split("==", 1)[1] for d in dependencies if d.split("==")[0].strip() == package]
    assert pins, f"pyproject.toml pins no {package}"
    return pins[0]


def wait_for_http(url: str, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)

