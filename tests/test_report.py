"""Plots (real PNGs) and the Markdown/HTML report and model card built from real evaluations."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from modelgate.evaluation import metrics as m
from modelgate.evaluation import plots
from modelgate.evaluation.bootstrap import MetricValue, evaluate_ood_classifier
from modelgate.evaluation.report import embed_images, render_model_card, render_report, render_report_markdown
from modelgate.gate import evaluate_gate, load_gate_config

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def evaluation():
    rng = np.random.default_rng(1)

    def softmax(n, sharpness):
        logits = rng.normal(size=(n, 6)) * sharpness
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    probs_in = softmax(240, 2.5)
    labels_in = np.where(rng.random(240) < 0.8, probs_in.argmax(axis=1), rng.integers(0, 6, 240))
    probs_ood = softmax(60, 1.0)
    values = evaluate_ood_classifier(probs_in, labels_in, probs_ood, n_resamples=100)
    return probs_in, labels_in, probs_ood, values


@pytest.fixture(scope="module")
def plot_files(evaluation, tmp_path_factory):
    probs_in, labels_in, probs_ood, _ = evaluation
    out = tmp_path_factory.mktemp("plots")
    is_ood, scores = m.ood_labels_and_scores(probs_in, probs_ood)
    return {
        "Reliability diagram": plots.plot_reliability_diagram(probs_in, labels_in, out / "rel.png"),
        "Precision-recall (OOD)": plots.plot_pr_curve(is_ood, scores, out / "pr.png"),
        "ROC (OOD)": plots.plot_roc_curve(is_ood, scores, out / "roc.png"),
        "Confusion matrix": plots.plot_confusion_matrix(
            labels_in, probs_in.argmax(axis=1), out / "cm.png",
            class_names=[f"intent_{i}" for i in range(6)]),
    }


# -- plots -----------------------------------------------------------------------------------
def test_plots_are_real_pngs_at_the_report_resolution(plot_files):
    expected_size = {"rel.png": (720, 780), "pr.png": (720, 600), "roc.png": (720, 600)}
    for path in plot_files.values():
        assert path.read_bytes()[:8] == PNG_MAGIC
        with Image.open(path) as image:
            if path.name in expected_size:
                assert image.size == expected_size[path.name]  # figsize (inches) * 120 dpi
            assert round(image.info["dpi"][0]) == plots.DPI
            pixels = np.asarray(image.convert("L"))
            assert pixels.std() > 10  # not a blank canvas


def test_confusion_matrix_plot_handles_many_classes_and_raw_counts(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 150, 600)
    path = plots.plot_confusion_matrix(labels, labels, tmp_path / "deep" / "cm150.png",
                                       normalize=False)
    assert path == tmp_path / "deep" / "cm150.png" and path.read_bytes()[:8] == PNG_MAGIC


def test_plots_reject_bad_input(tmp_path):
    with pytest.raises(ValueError, match="single class"):
        plots.plot_roc_curve(np.zeros(5, int), np.arange(5.0), tmp_path / "roc.png")
    with pytest.raises(ValueError, match="shape"):
        plots.plot_reliability_diagram(np.ones(5), np.zeros(5, int), tmp_path / "rel.png")
    assert not (tmp_path / "roc.png").exists()


# -- report ----------------------------------------------------------------------------------
LINEAGE = {
    "dataset": "s3://modelgate/datasets/clinc_oos/3f2a9c/",
    "dataset sha256": "3f2a9c",
    "git commit": "abc1234",
}


def verdict_for(values):
    cfg = load_gate_config({
        "thresholds": [{"metric": "accuracy", "min": 0.5},
                       {"metric": "ood_auprc", "min": 0.99, "use": "lower"}],
        "change_thresholds": [{"metric": "ece", "max_rise": 0.02}],
    })
    return evaluate_gate(values, cfg, None, None)


def test_render_report_writes_markdown_and_self_contained_html(evaluation, plot_files, tmp_path):
    values = evaluation[3]
    verdict = verdict_for(values)
    files = render_report(
        tmp_path / "report", title="intent-ood evaluation", model="intent-ood", version=4,
        lineage=LINEAGE, metrics=values, verdict=verdict, plots=plot_files,
        notes=["Evaluated on CLINC test + oos_test.", "a <script>alert(1)</script> | b"],
    )
    md = files.markdown.read_text()
    page = files.html.read_text()

    assert md.startswith("# intent-ood evaluation\n")
    assert "- **version**: `4`" in md and "- **git commit**: `abc1234`" in md
    auprc = values["ood_auprc"]
    assert (f"| ood_auprc | {auprc.value:.4f} | [{auprc.low:.4f}, {auprc.high:.4f}] | 300 |"
            in md)
    assert "| 95% interval |" in md
    assert f"**{verdict.summary()}**" in md and verdict.decision == "fail"
    assert re.search(r"\| absolute \| ood_auprc \| >= 0\.9900 \(lower bound\) \|.*\| fail \|", md)
    assert re.search(r"\| change \| ece \| rise <= 0\.0200 \|.*\| skipped \| skipped: no production", md)
    # Markdown links the plots copied next to it.
    for name in ("rel.png", "pr.png", "roc.png", "cm.png"):
        assert f"(plots/{name})" in md and (tmp_path / "report" / "plots" / name).is_file()
    assert "- a <script>alert(1)</script> | b\n" in md

    # HTML: each plot embedded byte for byte; nothing loaded from outside; user text escaped.
    sources = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(sources) == 4 and all(s.startswith("data:image/png;base64,") for s in sources)
    embedded = {base64.b64decode(s.split(",", 1)[1]) for s in sources}
    assert embedded == {p.read_bytes() for p in plot_files.values()}
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<style>" in page
    assert not re.search(r'(src|href)="https?:', page)
    assert '<td class="fail">fail</td>' in page and '<td class="skipped">skipped</td>' in page
    assert "dataset sha256" in page and "3f2a9c" in page
    assert_balanced_html(page)


def assert_balanced_html(page: str) -> None:
    void = {"meta", "img", "br", "hr", "link"}

    class Balance(HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack: list[str] = []

        def handle_starttag(self, tag, attrs):
            if tag not in void:
                self.stack.append(tag)

        def handle_endtag(self, tag):
            assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}> in {self.stack}"
            self.stack.pop()

    parser = Balance()
    parser.feed(page)
    assert parser.stack == []


def test_report_accepts_plain_dicts_and_no_verdict(evaluation):
    values = evaluation[3]
    as_dicts = {name: v.to_dict() for name, v in values.items()}
    verdict = verdict_for(values)
    from_objects = render_report_markdown(title="t", model="m", version=1, lineage={},
                                          metrics=values, verdict=verdict)
    from_dicts = render_report_markdown(title="t", model="m", version=1, lineage={},
                                        metrics=as_dicts, verdict=verdict.to_dict())
    assert from_objects == from_dicts
    bare = render_report_markdown(title="t", model="m", version=1, lineage={}, metrics=values,
                                  notes="single note")
    assert "The gate has not been evaluated" in bare and "- single note" in bare
    assert "## Notes" not in render_report_markdown(title="t", model="m", version=1, lineage={},
                                                    metrics=values)
    piped = render_report_markdown(title="t", model="m", version=1, lineage={},
                                   metrics=[MetricValue("top|1", 0.5)])
    assert "| top\\|1 | 0.5000 | n/a |" in piped  # a pipe must not split the table cell
    with pytest.raises(TypeError, match="metric 'x'"):
        render_report_markdown(title="t", model="m", version=1, lineage={}, metrics={"x": 0.5})


def test_report_names_a_missing_plot(evaluation, tmp_path):
    with pytest.raises(FileNotFoundError, match="'ROC' not found"):
        render_report(tmp_path, title="t", model="m", version=1, lineage={},
                      metrics=evaluation[3], plots={"ROC": tmp_path / "nope.png"})


def test_model_card_has_every_section(evaluation):
    values = evaluation[3]
    card = render_model_card(
        model="intent-ood", version=4,
        intended_use="Route user utterances to one of 150 intents; flag out-of-scope ones.",
        training_data={"dataset": LINEAGE["dataset"], "rows": 15000},
        evaluation_data="CLINC150 test (4500 in-scope) + oos_test (1000).",
        metrics=values,
        limitations=["English only.", "OOD scores are uncalibrated outside CLINC's domains."],
        how_to_load="modelgate predict intent-ood:4 'book a flight'",
        verdict=verdict_for(values),
    )
    sections = re.findall(r"^## (.+)$", card, flags=re.MULTILINE)
    assert sections == ["Intended use", "Training data", "Evaluation data", "Metrics",
                        "Limitations", "How to load"]
    assert card.startswith("# Model card: intent-ood v4")
    assert "- **rows**: `15000`" in card and "- English only." in card
    assert f"| ece | {values['ece'].value:.4f} |" in card and "lower is better" in card
    assert "```\nmodelgate predict intent-ood:4 'book a flight'\n```" in card
    assert "Gate: FAIL" in card


def test_embedded_markdown_carries_each_plot_byte_for_byte(evaluation, plot_files, tmp_path):
    """What the Prefect UI shows: every relative PNG link becomes a data URI of that very file, so
    the images need no link (and none expires); other links are left as they are."""
    files = render_report(tmp_path / "report", title="t", model="intent-ood", version=1, lineage=LINEAGE,
                          metrics=evaluation[3], plots=plot_files)
    md = files.markdown.read_text() + "\n![logo](https://example.org/logo.png)\n"
    read: list[str] = []

    def from_report_dir(path: str) -> bytes:
        read.append(path)
        return (tmp_path / "report" / path).read_bytes()

    embedded = embed_images(md, from_report_dir)
    assert sorted(read) == sorted(f"plots/{name}" for name in ("rel.png", "pr.png", "roc.png", "cm.png"))
    sources = re.findall(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", embedded)
    assert sorted(base64.b64decode(s) for s in sources) == sorted(
        (tmp_path / "report" / p).read_bytes() for p in read)
    assert "(plots/" not in embedded and "![logo](https://example.org/logo.png)" in embedded
