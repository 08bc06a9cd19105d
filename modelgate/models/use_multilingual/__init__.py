"""Universal Sentence Encoder multilingual v3: backbone, tokenizer, and its keras-hub preset."""

from modelgate.models.use_multilingual.backbone import (
    NgramResidualBlock,
    USEMultilingualBackbone,
)
from modelgate.models.use_multilingual.tokenizer import USEMultilingualTokenizer

__all__ = ["NgramResidualBlock", "USEMultilingualBackbone", "USEMultilingualTokenizer"]
