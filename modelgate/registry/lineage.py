"""Where a model came from, besides its data: code revision, package versions, runtime."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = (
    "modelgate", "keras", "keras-hub", "tensorflow", "tensorflow-text", "jax", "torch",
    "great-expectations", "prefect", "scikit-learn", "pandas", "numpy", "boto3",
)


def git_commit(path: Path | None = None) -> str | None:
    """The commit of the checkout modelgate runs from (None when not a git checkout)."""
    path = path or Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True, text=True, timeout=5,
    ).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """name -> installed version of each of ``names`` that is installed."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def environment_lineage() -> dict:
    # keras loads TensorFlow (seconds): modelgate.registry is imported by the CLI's registry
    # commands and stays light, so keras is imported only when lineage is recorded.
    import keras

    return {
        "git_commit": git_commit(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "keras_backend": keras.backend.backend(),
    }
