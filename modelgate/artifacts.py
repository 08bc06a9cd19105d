"""The on-disk layout of a trained model, as staged after training and as stored in a version.

```
model.keras              the Keras model (weights + architecture; loaded in safe mode, no pickle)
preprocessor/            the tokenizer: tokenizer.json (its config) + assets/ (vocabulary)
labels.json              class names in output order
inference.json           what a predictor needs besides the model (sequence length, thresholds...)
ood_scorer.npz           (intent-ood, when its OOD score is a distance) class distance: centroids,
                         precision; nearest neighbour: the training embeddings (references)
```
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL_FILE = "model.keras"
PREPROCESSOR_DIR = "preprocessor"
TOKENIZER_CONFIG = "tokenizer.json"
LABELS_FILE = "labels.json"
INFERENCE_FILE = "inference.json"


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    labels: list[str]
    inference: dict[str, Any] = field(default_factory=dict)


def _keras():
    """keras, with keras-hub's tokenizers and modelgate's custom layers registered for
    deserialization.

    Imported here rather than at the top: only loading a model needs Keras and the custom layers
    (TensorFlow, ~12 s), while the layout constants and the inference.json helpers are also used
    where no model is loaded (the registry's release step).
    """
    import keras
    import keras_hub  # noqa: F401  (registers the tokenizer classes)

    import modelgate.models  # noqa: F401  (registers the custom layers)

    return keras


def save_tokenizer(tokenizer, directory: Path) -> None:
    """keras-hub's own tokenizer layout (config + assets) without a backbone config beside it."""
    tokenizer.save_to_preset(str(directory))


def load_tokenizer_dir(directory: Path):
    keras = _keras()
    config_path = Path(directory) / TOKENIZER_CONFIG
    if not config_path.exists():
        raise FileNotFoundError(f"no tokenizer config at {config_path}")
    tokenizer = keras.saving.deserialize_keras_object(json.loads(config_path.read_text()))
    if hasattr(tokenizer, "load_preset_assets"):
        tokenizer.load_preset_assets(str(directory))
    return tokenizer


def save_model_dir(
    directory: Path, model, tokenizer, labels: list[str], inference: dict[str, Any]
) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory / MODEL_FILE)
    save_tokenizer(tokenizer, directory / PREPROCESSOR_DIR)
    (directory / LABELS_FILE).write_text(json.dumps(list(labels), indent=1))
    write_inference(directory, inference)
    return directory


def write_inference(directory: Path, inference: dict[str, Any]) -> None:
    (Path(directory) / INFERENCE_FILE).write_text(json.dumps(inference, indent=2, sort_keys=True))


def read_inference(directory: Path) -> dict[str, Any]:
    return json.loads((Path(directory) / INFERENCE_FILE).read_text())


def load_model_dir(directory: Path) -> LoadedModel:
    """Load a staged or registered model directory. Keras safe mode: no arbitrary code runs."""
    keras = _keras()
    directory = Path(directory)
    model_path = directory / MODEL_FILE
    if not model_path.exists():
        raise FileNotFoundError(f"no {MODEL_FILE} in {directory}")
    model = keras.models.load_model(model_path, safe_mode=True, compile=False)
    return LoadedModel(
        model=model,
        tokenizer=load_tokenizer_dir(directory / PREPROCESSOR_DIR),
        labels=json.loads((directory / LABELS_FILE).read_text()),
        inference=read_inference(directory),
    )


def recalibrate_model_file(directory: Path, calibration: dict[str, Any]) -> None:
    """Store the calibration chosen at evaluation in the model itself, so that ``model(x)`` of
    the registered file gives exactly the probabilities that were evaluated."""
    keras = _keras()
    path = Path(directory) / MODEL_FILE
    model = keras.models.load_model(path, safe_mode=True, compile=False)
    model.set_calibration(**calibration)
    model.save(path)
