"""Models: pretrained encoders (keras-hub presets, USE multilingual v3, MPNet), classifiers with an SNGP or a
softmax head, and the siamese sentence encoder."""

from modelgate.models.backbones import (
    DEFAULT_PRESET,
    load_backbone,
    load_tokenizer,
    offline_minilm_dir,
    resolve_preset,
    tokenizer_id,
)
from modelgate.models.classifier import HEADS, EncoderClassifier
from modelgate.models.gaussian_process import (
    CovarianceResetCallback,
    RandomFeatureGaussianProcess,
    gp_layers,
)
from modelgate.models.mpnet import MPNetBackbone, MPNetTokenizer
from modelgate.models.pooling import MaskedMeanPooling
from modelgate.models.spectral_norm import SpectralNormDense
from modelgate.models.siamese import SentenceEncoder, SiameseSimilarity
from modelgate.models.use_multilingual import USEMultilingualBackbone, USEMultilingualTokenizer

__all__ = [
    "DEFAULT_PRESET",
    "HEADS",
    "CovarianceResetCallback",
    "EncoderClassifier",
    "MPNetBackbone",
    "MPNetTokenizer",
    "MaskedMeanPooling",
    "RandomFeatureGaussianProcess",
    "SentenceEncoder",
    "SiameseSimilarity",
    "SpectralNormDense",
    "USEMultilingualBackbone",
    "USEMultilingualTokenizer",
    "gp_layers",
    "load_backbone",
    "load_tokenizer",
    "offline_minilm_dir",
    "resolve_preset",
    "tokenizer_id",
]
