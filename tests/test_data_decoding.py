"""A data file with a byte that is not UTF-8 fails with one line naming the file, the line and the
byte offset, whichever loader reads it; a byte-order mark is not an error."""

from __future__ import annotations

import gzip
import json

import pytest

from fixtures_clinc import make_clinc_payload
from modelgate.data import clinc, esco, ethos, snli, stsb
from modelgate.data.sources import DataSourceError


def _spoil(text: str, marker: str) -> tuple[bytes, int, int]:
    """``text`` as UTF-8 with the first byte of ``marker`` replaced by 0xff: (bytes, line, offset)."""
    raw = text.encode()
    offset = raw.index(marker.encode())
    return raw[:offset] + b"\xff" + raw[offset + 1:], raw.count(b"\n", 0, offset) + 1, offset


CLINC_CSV = "split,text,intent\ntrain,set an alarm,alarm\ntest,what is the weather,weather\n"
ETHOS_CSV = "comment;isHate\nyou are lovely;0.0\nsome hateful words;0.9\n"
SNLI_CSV = "premise,hypothesis,label\na man sleeps,a person rests,0\na dog runs,a cat sits,2\n"
STSB_TSV = "main-captions\tMSRvid\t2012test\t0001\t5.000\tA man plays.\tA man is playing.\n" \
           "main-captions\tMSRvid\t2012test\t0002\t1.000\tA cat eats.\tA plane flies.\n"
PAIRS_CSV = "left,right,similarity\nnurse,registered nurse,0.9\nbaker,pilot,0.1\n"

# name: (file name, text, marker to spoil, read(path))
LOADERS = {
    "clinc json": ("data_full.json", json.dumps(make_clinc_payload()), "weather", clinc.read_clinc_file),
    "clinc csv": ("clinc.csv", CLINC_CSV, "weather", clinc.read_clinc_file),
    "ethos csv": ("ethos.csv", ETHOS_CSV, "hateful", lambda p: ethos.parse_ethos_csv(p.read_bytes(), str(p))),
    "snli csv.gz": ("test.csv.gz", SNLI_CSV, "cat", None),
    "stsb tsv": ("sts-test.csv", STSB_TSV, "plane", lambda p: stsb.read_stsb_file(p, "test")),
    "esco pairs": ("pairs.csv", PAIRS_CSV, "pilot", esco.read_pairs_file),
}


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_a_byte_that_is_not_utf8_names_file_line_and_offset(name, tmp_path):
    file_name, text, marker, read = LOADERS[name]
    raw, line, offset = _spoil(text, marker)
    path = tmp_path / file_name
    if file_name.endswith(".gz"):  # the offset is within the decompressed text
        path.write_bytes(gzip.compress(raw))
        read = snli.read_snli_file
    else:
        path.write_bytes(raw)
    with pytest.raises(DataSourceError) as caught:
        read(path)
    message = str(caught.value)
    assert message == (f"{path} is not UTF-8 text: byte 0xff at line {line} (byte offset {offset}) "
                       "cannot be decoded; re-save the file as UTF-8")


def test_a_byte_order_mark_is_read_as_text(tmp_path):
    path = tmp_path / "clinc.csv"
    path.write_bytes(b"\xef\xbb\xbf" + CLINC_CSV.encode())
    frame = clinc.read_clinc_file(path)
    assert list(frame["text"]) == ["set an alarm", "what is the weather"]


def test_a_broken_gzip_file_is_named(tmp_path):
    path = tmp_path / "test.csv.gz"
    path.write_bytes(gzip.compress(SNLI_CSV.encode())[:20])
    with pytest.raises(DataSourceError, match=f"{path} is not a readable gzip file"):
        snli.read_snli_file(path)
