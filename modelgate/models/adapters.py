"""Adapter artifacts: the trained LoRA factors (+ head) and the identity of the base they adapt.

When the base model is a known preset (anything ``from_preset`` can load again by name: a keras-hub
preset, an ``hf://``/``kaggle://`` handle, or the packaged MiniLM), a version stores only what was
trained, a few hundred kilobytes instead of a second copy of the base::

    adapter/base.json           {"preset", "sha256", "files", "family", "lora_rank"}
    adapter/lora.lora.h5        the LoRA factors (keras-hub's backbone.save_lora_weights)
    adapter/head.weights.npz    the classification head (encoders only)

Loading reloads the base from its preset, refuses it when its files no longer hash to the recorded
sha256 (a different base would silently give different predictions), then applies the adapter.
A base that is only a local directory (for example a test's tiny random backbone) may not exist
where the version is loaded, so it is stored whole instead (``model.keras``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from keras_hub.src.utils.preset_utils import CONFIG_FILE, get_file

from modelgate.models.backbones import resolve_preset
from modelgate.models.lora import enable_backbone_lora, lora_layers

ADAPTER_DIR = "adapter"
BASE_FILE = "base.json"
LORA_FILE = "lora.lora.h5"
HEAD_FILE = "head.weights.npz"


class BaseModelMismatch(RuntimeError):
    """The base model found for an adapter is not the one it was trained on."""


def is_known_preset(preset: str) -> bool:
    """True when ``preset`` names a model that can be fetched again by name (not a local path)."""
    name = (preset or "").strip()
    if name.startswith(("hf://", "kaggle://", "modelscope://")):
        return True
    if resolve_preset(name) != name:  # a project alias, e.g. the packaged MiniLM
        return True
    return not Path(name).expanduser().exists() and "/" not in name


def preset_files_dir(preset: str) -> Path:
    """The local directory holding a preset's files (downloading them for a remote preset)."""
    resolved = resolve_preset(preset)
    local = Path(resolved).expanduser()
    if local.is_dir():
        return local
    return Path(get_file(resolved, CONFIG_FILE)).parent


def preset_sha256(preset: str) -> tuple[str, list[str]]:
    """sha256 over every file of the preset (relative path and bytes), and the files hashed."""
    root = preset_files_dir(preset)
    digest = hashlib.sha256()
    names = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        relative = path.relative_to(root).as_posix()
        names.append(relative)
        digest.update(f"{relative}\n".encode())
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    if not names:
        raise FileNotFoundError(f"preset {preset!r} has no files under {root}")
    return digest.hexdigest(), names


def base_identity(preset: str, family: str, rank: int) -> dict[str, Any]:
    sha, files = preset_sha256(preset)
    return {"preset": preset, "sha256": sha, "files": files, "family": family, "lora_rank": int(rank)}


def save_adapter(directory: Path, backbone, identity: dict[str, Any], head_layers: dict | None = None) -> Path:
    """Write the adapter files under ``directory/adapter``."""
    target = Path(directory) / ADAPTER_DIR
    target.mkdir(parents=True, exist_ok=True)
    backbone.save_lora_weights(str(target / LORA_FILE))
    if head_layers:
        arrays = {
            f"{name}/{index}": np.asarray(weight)
            for name, layer in head_layers.items()
            for index, weight in enumerate(layer.get_weights())
        }
        np.savez(target / HEAD_FILE, **arrays)
    (target / BASE_FILE).write_text(json.dumps(identity, indent=2, sort_keys=True))
    return target


def has_adapter(directory: Path) -> bool:
    return (Path(directory) / ADAPTER_DIR / BASE_FILE).is_file()


def read_identity(directory: Path) -> dict[str, Any]:
    return json.loads((Path(directory) / ADAPTER_DIR / BASE_FILE).read_text())


def verify_base(identity: dict[str, Any]) -> None:
    """Refuse a base preset whose files changed since the adapter was trained on it."""
    actual, _ = preset_sha256(identity["preset"])
    if actual != identity["sha256"]:
        raise BaseModelMismatch(
            f"base model {identity['preset']!r} has sha256 {actual}, but the adapter was trained "
            f"on sha256 {identity['sha256']}: refusing to apply it to a different base"
        )


def load_adapter_weights(directory: Path, backbone, head_layers: dict | None = None) -> None:
    """Apply the stored LoRA factors (enabling LoRA of the stored rank) and head weights."""
    source = Path(directory) / ADAPTER_DIR
    identity = read_identity(directory)
    if not lora_layers(backbone):
        enable_backbone_lora(backbone, int(identity["lora_rank"]))
    backbone.load_lora_weights(str(source / LORA_FILE))
    if head_layers:
        with np.load(source / HEAD_FILE, allow_pickle=False) as archive:
            for name, layer in head_layers.items():
                count = len(layer.get_weights())
                missing = [f"{name}/{i}" for i in range(count) if f"{name}/{i}" not in archive.files]
                if missing:
                    raise ValueError(f"{source / HEAD_FILE} lacks head weights {missing}")
                layer.set_weights([archive[f"{name}/{i}"] for i in range(count)])
