"""MPNet (all-mpnet-base-v2): backbone, tokenizer, and its keras-hub preset."""

from modelgate.models.mpnet.backbone import MPNetBackbone
from modelgate.models.mpnet.tokenizer import MPNetTokenizer

__all__ = ["MPNetBackbone", "MPNetTokenizer"]
