"""A small ETHOS-like dataset for tests: the binary CSV layout (semicolon-separated, header
``comment;isHate``, isHate a fraction of annotators), with hateful and friendly comments built from
the tiny preset's words so a tiny model can tell them apart."""

from __future__ import annotations

import itertools
from pathlib import Path

HATEFUL_WORDS = ["hate", "stupid", "idiot", "terrible", "awful", "bad"]
FRIENDLY_WORDS = ["love", "nice", "kind", "good", "great", "thanks"]
SUBJECTS = ["people", "women", "men", "children", "person", "dog", "cat", "teacher", "doctor", "driver"]
FRACTIONS_HATEFUL = [1.0, 0.8333333333333334, 0.6666666666666666, 0.5]
FRACTIONS_FRIENDLY = [0.0, 0.16666666666666666, 0.3333333333333333]


def make_ethos_rows(count: int = 60) -> list[tuple[str, float]]:
    """``count`` unique (comment, isHate) rows, alternating hateful and friendly."""
    rows = []
    combos = itertools.product(SUBJECTS, range(len(HATEFUL_WORDS)))
    for index, (subject, k) in zip(range(count), combos):
        if index % 2 == 0:
            words = (HATEFUL_WORDS[k], HATEFUL_WORDS[(k + 1) % 6])
            rows.append((f"i {words[0]} {subject}, they are {words[1]}", FRACTIONS_HATEFUL[index % 4]))
        else:
            words = (FRIENDLY_WORDS[k], FRIENDLY_WORDS[(k + 1) % 6])
            rows.append((f"i {words[0]} {subject}, they are {words[1]}", FRACTIONS_FRIENDLY[index % 3]))
    return rows


def ethos_csv(rows: list[tuple[str, object]]) -> str:
    return "comment;isHate\n" + "".join(f"{text};{value}\n" for text, value in rows)


def write_ethos_mirror(root: Path, rows: list[tuple[str, object]] | None = None) -> Path:
    """Lay out ``root/ethos/Ethos_Dataset_Binary.csv`` like the data mirror; returns root."""
    folder = Path(root) / "ethos"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Ethos_Dataset_Binary.csv").write_text(ethos_csv(rows or make_ethos_rows()), encoding="utf-8")
    return Path(root)


def fixture_words() -> list[str]:
    """Every word of the fixture comments (for a tiny vocabulary)."""
    return sorted({w.strip(",") for text, _ in make_ethos_rows() for w in text.split()})


def fixture_config(train_size: int = 40) -> dict:
    """Config keys fitting the fixture: 60 comments, ``train_size`` of them training."""
    return {
        "data": {"train_size": train_size},
        "validation": {"split_rows": {"train": [10, 100], "test": [5, 100]},
                       "hateful_fraction": [0.1, 0.9]},
    }


# -- a tiny causal LM for the prompt-scoring path ---------------------------------------------
PROMPT_WORDS = "Classify the following text into one of the following classes: * no yes Text: Prediction:"


def train_sentencepiece(words: list[str]) -> bytes:
    """A word-level SentencePiece model holding ``words`` plus Gemma's special tokens."""
    import io

    import sentencepiece as spm

    corpus = [" ".join(words)] * 3 + [PROMPT_WORDS] * 3 + [text for text, _ in make_ethos_rows()]
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=buffer, model_type="word",
        vocab_size=500, hard_vocab_limit=False,  # a soft limit: every word of the corpus is kept
        pad_id=0, eos_id=1, bos_id=2, unk_id=3,
        pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
        user_defined_symbols=["<separator>"], minloglevel=2,
    )
    return buffer.getvalue()


def build_tiny_gemma_preset(directory: Path, seed: int = 0) -> Path:
    """A randomly initialised 2-layer GemmaBackbone + a GemmaTokenizer trained here, saved as a
    keras-hub preset (``CausalLM.from_preset`` loads it as a GemmaCausalLM)."""
    import keras
    import keras_hub

    directory = Path(directory)
    if (directory / "config.json").exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    tokenizer = keras_hub.models.GemmaTokenizer(proto=train_sentencepiece(fixture_words()))
    backbone = keras_hub.models.GemmaBackbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=2, num_query_heads=2,
        num_key_value_heads=1, hidden_dim=16, intermediate_dim=32, head_dim=8,
    )
    backbone.save_to_preset(str(directory))
    tokenizer.save_to_preset(str(directory))
    return directory
