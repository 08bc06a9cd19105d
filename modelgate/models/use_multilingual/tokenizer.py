"""USE multilingual v3's SentencePiece tokenizer (128k pieces) as a keras-hub tokenizer.

Sequences are packed ``<s> text </s>``, as the original model reads them. The vocabulary has no
padding piece; padding uses ``<unk>`` (id 0) and is masked out by ``padding_mask``.
"""

from __future__ import annotations

import keras
from keras_hub.tokenizers import SentencePieceTokenizer

from modelgate.models.use_multilingual.backbone import USEMultilingualBackbone


@keras.saving.register_keras_serializable(package="modelgate")
class USEMultilingualTokenizer(SentencePieceTokenizer):
    backbone_cls = USEMultilingualBackbone

    def __init__(self, proto=None, **kwargs):
        self._add_special_token("<s>", "start_token")
        self._add_special_token("</s>", "end_token")
        self._add_special_token("<unk>", "pad_token")
        super().__init__(proto=proto, **kwargs)
