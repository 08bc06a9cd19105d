"""MPNet's WordPiece tokenizer (BERT's uncased vocabulary with RoBERTa-style specials) as a
keras-hub tokenizer.

Specials: ``<s>`` 0 (start), ``<pad>`` 1, ``</s>`` 2 (end), ``<unk>`` 3 and ``<mask>`` (last id).
Words missing from the vocabulary become ``[UNK]``, as in Hugging Face's ``MPNetTokenizer`` (the
checkpoint's ``unk_token``), not ``<unk>``. Sequences pack as ``<s> text </s>`` padded with ``<pad>``.

Text is cleaned and lowercased as Hugging Face's tokenizer does: control and format characters
(zero-width spaces, soft hyphens, ...) and U+FFFD are dropped, then Unicode lowercase
(``str.lower``) instead of keras-hub's NFKC case folding, which rewrites "ß" to "ss", "²" to "2"
or "ﬁ" to "fi" and so gives ids the model never saw for those characters.
"""

from __future__ import annotations

import unicodedata

import keras
import numpy as np
from keras_hub.tokenizers import WordPieceTokenizer

from modelgate.models.mpnet.backbone import MPNetBackbone

try:
    import tensorflow as tf
except ImportError:  # keras-hub's pure-Python tokenizer path needs no TensorFlow
    tf = None

OOV_TOKEN = "[UNK]"
# Control (Cc, but tab and newlines), format (Cf) and private-use (Co) characters, and U+FFFD.
_DROPPED_CATEGORIES = {"Cc", "Cf", "Co"}
_DROPPED_PATTERN = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]|\p{Cf}|\p{Co}|\x{FFFD}"


def _clean_python(text: str, lowercase: bool) -> str:
    text = "".join(
        c for c in text
        if c in "\t\n\r" or (c != "\ufffd" and unicodedata.category(c) not in _DROPPED_CATEGORIES)
    )
    return text.lower() if lowercase else text


def _clean_tf(text, lowercase: bool):
    text = tf.strings.regex_replace(text, _DROPPED_PATTERN, "")
    return tf.strings.lower(text, encoding="utf-8") if lowercase else text


def clean_text(inputs, lowercase: bool = True):
    """Drop control/format characters and lowercase, for every input form keras-hub tokenizers
    take (str, bytes, lists, numpy arrays, TF tensors)."""
    if tf is not None and isinstance(inputs, tf.RaggedTensor):
        return tf.ragged.map_flat_values(_clean_tf, inputs, lowercase)
    if tf is not None and isinstance(inputs, tf.Tensor):
        return _clean_tf(inputs, lowercase)
    if isinstance(inputs, bytes):
        inputs = inputs.decode("utf-8")
    if isinstance(inputs, str):
        return _clean_python(inputs, lowercase)
    if isinstance(inputs, np.ndarray):
        return np.vectorize(lambda t: clean_text(t, lowercase), otypes=[object])(inputs) if inputs.size else inputs
    if isinstance(inputs, (list, tuple)):
        return type(inputs)(clean_text(item, lowercase) for item in inputs)
    raise TypeError(f"MPNetTokenizer: cannot tokenize {type(inputs).__name__} input, expected strings")


@keras.saving.register_keras_serializable(package="modelgate")
class MPNetTokenizer(WordPieceTokenizer):
    backbone_cls = MPNetBackbone

    def __init__(self, vocabulary=None, lowercase=True, strip_accents=True, oov_token=OOV_TOKEN, **kwargs):
        self._add_special_token("<s>", "cls_token")
        self._add_special_token("</s>", "sep_token")
        self._add_special_token("<pad>", "pad_token")
        self._add_special_token("<mask>", "mask_token")
        self._add_special_token("<s>", "start_token")
        self._add_special_token("</s>", "end_token")
        # keras-hub's own lowercasing is NFKC case folding; this class lowercases in tokenize().
        super().__init__(
            vocabulary=vocabulary, lowercase=False, strip_accents=strip_accents, oov_token=oov_token, **kwargs
        )
        self.lowercase_input = bool(lowercase)

    def tokenize(self, inputs):
        return super().tokenize(clean_text(inputs, self.lowercase_input))

    def get_config(self):
        return {**super().get_config(), "lowercase": self.lowercase_input}
