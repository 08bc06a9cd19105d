"""Serve a registered version: resolve the reference, fetch with sha256 checks, load in safe mode.

A pipeline's predictor offers what its task supports: ``predict(texts)`` for single texts,
``predict_pairs(pairs)`` for sentence pairs, ``embed(texts)`` for encoders; each returns objects
with ``to_dict()``, and ``format(predictions)`` renders them as a table.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelgate.pipelines import get_pipeline
from modelgate.pipelines.base import Predictor
from modelgate.registry import Registry
from modelgate.registry.integrity import verify_version
from modelgate.storage import ObjectStore


def load_predictor(ref: str, store: ObjectStore | None = None) -> Predictor:
    """``MODEL``, ``MODEL:VERSION`` or ``MODEL@ALIAS`` -> the pipeline's predictor for that version.

    A registered model is named after its pipeline, whose ``load_predictor`` reads the version's
    directory once it is verified as gate and promote verify it (signature when a key is
    configured, every file's sha256, the manifest against metrics.json).
    """
    registry = Registry(store or ObjectStore.from_settings())
    version = registry.resolve(ref)
    verified = verify_version(registry, version.model, version.version)
    return get_pipeline(version.model).load_predictor(verified.directory)


def check_texts(texts, what: str = "text") -> None:
    """Every input has words: an empty or blank text would still get a confident-looking answer."""
    for number, text in enumerate(texts, start=1):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{what} {number} is empty or only whitespace: give words to predict on")


@dataclass
class PredictRequest:
    texts: list[str] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)
    embed: bool = False
    output: str | None = None

    @classmethod
    def build(cls, texts, pair, input_file, embed: bool, output: str | None) -> "PredictRequest":
        texts, pairs = list(texts), [tuple(pair)] if pair else []
        if input_file:
            path = Path(input_file)
            if not path.is_file():
                raise ValueError(f"input file not found: {path}")
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                if "\t" in line:
                    left, _, right = line.partition("\t")
                    if not left.strip() or not right.strip():
                        raise ValueError(f"{path}:{number}: a pair needs text on both sides of the tab")
                    pairs.append((left, right))
                else:
                    texts.append(line)
        check_texts(texts)
        for number, (left, right) in enumerate(pairs, start=1):
            check_texts([left, right], f"pair {number}, side")
        if texts and pairs:
            raise ValueError("give either texts or pairs, not both")
        if not texts and not pairs:
            raise ValueError("nothing to predict: give texts, --pair A B, or --file PATH")
        if embed and pairs:
            raise ValueError("--embed takes single texts, not pairs")
        if embed and not output:
            raise ValueError("--embed needs --output PATH (.npy or .csv)")
        if output and not embed:
            raise ValueError("--output is only used with --embed")
        return cls(texts=texts, pairs=pairs, embed=embed, output=output)


@dataclass
class PredictResult:
    predictor: Any
    predictions: list[Any] = field(default_factory=list)
    embedded: dict[str, Any] | None = None

    def to_json(self):
        if self.embedded is not None:
            return self.embedded
        return [p.to_dict() for p in self.predictions]

    def describe(self) -> str:
        if self.embedded is not None:
            e = self.embedded
            return f"wrote {e['rows']} embeddings of dimension {e['dimension']} to {e['output']}"
        return self.predictor.format(self.predictions)


def _require(predictor, method: str, what: str):
    if not hasattr(predictor, method):
        raise ValueError(f"this model does not take {what}")
    return getattr(predictor, method)


def write_embeddings(vectors, texts: list[str], output: str) -> dict[str, Any]:
    """Write embeddings atomically (a temp file renamed), as .npy or as .csv with the text first."""
    path = Path(output)
    if path.suffix not in (".npy", ".csv"):
        raise ValueError(f"--output must end in .npy or .csv, not {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    vectors = np.asarray(vectors, dtype="float32")
    if path.suffix == ".npy":
        with open(tmp, "wb") as handle:
            np.save(handle, vectors)
    else:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", *[f"e{i}" for i in range(vectors.shape[1])]])
            for text, row in zip(texts, vectors):
                writer.writerow([text, *[f"{v:.6g}" for v in row]])
    os.replace(tmp, path)
    return {"output": str(path), "rows": int(vectors.shape[0]), "dimension": int(vectors.shape[1])}


def run_request(predictor, request: PredictRequest) -> PredictResult:
    check_texts(request.texts)
    for left, right in request.pairs:
        check_texts([left, right], "pair side")
    if request.embed:
        vectors = _require(predictor, "embed", "--embed (it is not an encoder)")(request.texts)
        return PredictResult(predictor, embedded=write_embeddings(vectors, request.texts, request.output))
    if request.pairs:
        return PredictResult(predictor, _require(predictor, "predict_pairs", "sentence pairs")(request.pairs))
    return PredictResult(predictor, _require(predictor, "predict", "single texts")(request.texts))
