"""How `modelgate predict` reads its inputs and writes embeddings (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from modelgate.predict import PredictRequest, run_request, write_embeddings


def test_texts_pairs_and_files_are_read(tmp_path):
    assert PredictRequest.build(["a", "b"], None, None, False, None).texts == ["a", "b"]
    assert PredictRequest.build([], ("p", "h"), None, False, None).pairs == [("p", "h")]
    pairs_file = tmp_path / "pairs.tsv"
    pairs_file.write_text("a man sleeps\ta person rests\n\nx\ty\n")
    assert PredictRequest.build([], None, str(pairs_file), False, None).pairs == [
        ("a man sleeps", "a person rests"),
        ("x", "y"),
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (([], None, None, False, None), "nothing to predict"),
        ((["a"], ("p", "h"), None, False, None), "not both"),
        ((["a"], None, None, True, None), "--embed needs --output"),
        ((["a"], None, None, False, "x.npy"), "only used with --embed"),
        (([], None, "/nonexistent/titles.txt", False, None), "input file not found"),
    ],
)
def test_bad_requests_say_what_is_wrong(args, message):
    with pytest.raises(ValueError, match=message):
        PredictRequest.build(*args)


@pytest.mark.parametrize(
    "args, message",
    [
        (([""], None, None, False, None), "text 1 is empty or only whitespace"),
        ((["fine", " \t\n"], None, None, False, None), "text 2 is empty or only whitespace"),
        (([], ("a premise", "  "), None, False, None), "pair 1, side 2 is empty"),
        ((["\u3000"], None, None, True, "out.npy"), "text 1 is empty"),  # ideographic space
    ],
)
def test_empty_or_blank_texts_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        PredictRequest.build(*args)


def test_the_cli_refuses_an_empty_text_in_one_line_with_the_usage_exit_code():
    from typer.testing import CliRunner

    from modelgate.cli import app

    result = CliRunner().invoke(app, ["predict", "intent-ood", ""])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["error: text 1 is empty or only whitespace: give words to predict on"]


def test_every_predictor_path_refuses_blank_input():
    class Everything:
        def predict(self, texts):
            return texts

        def predict_pairs(self, pairs):
            return pairs

        def embed(self, texts):
            return np.zeros((len(texts), 2))

    for request in (PredictRequest(texts=[" "]), PredictRequest(pairs=[("", "h")]),
                    PredictRequest(texts=[""], embed=True, output="x.npy")):
        with pytest.raises(ValueError, match="empty or only whitespace"):
            run_request(Everything(), request)


def test_a_half_empty_pair_names_its_line(tmp_path):
    bad = tmp_path / "pairs.tsv"
    bad.write_text("ok\tfine\n\tmissing left\n")
    with pytest.raises(ValueError, match=r"pairs.tsv:2"):
        PredictRequest.build([], None, str(bad), False, None)


def test_embeddings_are_written_whole_as_npy_or_csv(tmp_path):
    vectors = np.arange(6, dtype="float32").reshape(2, 3)
    info = write_embeddings(vectors, ["x", "y"], str(tmp_path / "out.npy"))
    assert info == {"output": str(tmp_path / "out.npy"), "rows": 2, "dimension": 3}
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), vectors)
    write_embeddings(vectors, ["x", "y"], str(tmp_path / "out.csv"))
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0] == "text,e0,e1,e2" and lines[2].startswith("y,3,4,5")
    assert not list(tmp_path.glob(".*partial"))
    with pytest.raises(ValueError, match="must end in .npy or .csv"):
        write_embeddings(vectors, ["x", "y"], str(tmp_path / "out.txt"))


def test_a_predictor_without_the_capability_is_refused():
    class TextsOnly:
        def predict(self, texts):
            return []

    request = PredictRequest.build([], ("p", "h"), None, False, None)
    with pytest.raises(ValueError, match="does not take sentence pairs"):
        run_request(TextsOnly(), request)
