"""Leave-one-source-out: no fold sees its left-out source, figures per source and overall."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app import cli
from app.config import Settings
from app.errors import DatasetError, ExitCode
from app.training import fold as fold_mod
from app.training.evaluate import loso_evaluate
from app.training.fold import FitOptions, source_weights
from app.training.loso import loso_table
from tests.conftest import needs_fonts, needs_tesseract

SMALL = FitOptions(
    grids={
        "catboost": [{"depth": 3, "learning_rate": 0.1, "iterations": 60}],
        "svm": [{"C": 1.0, "gamma": "scale"}, {"C": 10.0, "gamma": "scale"}],
    }
)


def test_source_weights_make_a_source_the_unit() -> None:
    sources = np.array(["big"] * 90 + ["small"] * 10 + ["h1"] * 5 + ["h2"] * 15)
    y = np.array([0] * 100 + [1] * 20)
    w = source_weights(sources, y)
    assert w.mean() == pytest.approx(1.0)
    assert w[sources == "big"].sum() == pytest.approx(w[sources == "small"].sum())
    assert w[sources == "h1"].sum() == pytest.approx(w[sources == "h2"].sum())
    assert w[y == 0].sum() == pytest.approx(w[y == 1].sum())


@pytest.fixture(scope="session")
def loso_summary(
    multi_source: Path, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], Path, list[tuple[str, set[str]]]]:
    """One in-process LOSO run, recording which documents every fit trained on."""
    seen: list[tuple[str, set[str]]] = []
    real = fold_mod.fit_fold

    def spy(corpus: Any, train_docs: set[str], opts: FitOptions) -> Any:
        seen.append(("fit", set(train_docs)))
        return real(corpus, train_docs, opts)

    mp = pytest.MonkeyPatch()
    mp.setattr("app.training.loso.fit_fold", spy)
    out = tmp_path_factory.mktemp("loso-out")
    try:
        summary = loso_evaluate(
            multi_source, opts=SMALL, cache_dir=cache_dir, workers=1, fullpage=True, out=out
        )
    finally:
        mp.undo()
    return summary, out, seen


@needs_tesseract
@needs_fonts
def test_no_fold_trains_on_its_left_out_source(
    loso_summary: tuple[dict[str, Any], Path, list[tuple[str, set[str]]]], multi_source: Path
) -> None:
    from app.training.dataset import discover

    summary, _, seen = loso_summary
    docs = discover(multi_source).documents
    by_source: dict[str, set[str]] = {}
    for d in docs:
        by_source.setdefault(d.source, set()).add(d.sha256)
    assert summary["folds"] == len(by_source) == len(seen) == 5
    for source, shas in by_source.items():
        # exactly one fit left this source out, and it trained on every other document
        fits = [docs_ for _, docs_ in seen if not docs_ & shas]
        assert len(fits) == 1, source
        others = {d.sha256 for d in docs if d.source != source and d.label != "mixed"}
        assert others <= fits[0]


@needs_tesseract
@needs_fonts
def test_loso_figures_per_source_and_overall(
    loso_summary: tuple[dict[str, Any], Path, list[tuple[str, set[str]]]],
) -> None:
    summary, out, _ = loso_summary
    scorers = summary["scorers"]
    assert set(scorers) >= {"catboost", "svm", "majority class", "geometry probe"}
    assert "tesseract full-page confidence" in scorers
    for name in ("catboost", "svm"):
        overall = scorers[name]["overall"]
        assert overall["pages"] == 14 and overall["sources"] == 5
        assert overall["mixed_pages"] == 2
        per = scorers[name]["per_source"]
        assert set(per) == {"print_a", "print_b", "hand_a", "hand_b", "forms"}
        finals = [m["final_accuracy"] for m in per.values()]
        assert overall["macro_final_accuracy"] == pytest.approx(float(np.mean(finals)))
        assert overall["min_final_accuracy"] == pytest.approx(min(finals))
        assert per["forms"]["page_accuracy"] is None  # mixed pages have no page verdict
        assert per["forms"]["pure_pages"] == 0
        for m in per.values():
            assert 0.0 <= m["final_accuracy"] <= 1.0
            assert "robust_final_accuracy" in m
    # the majority class never says mixed, so it gets no mixed page right
    assert scorers["majority class"]["overall"]["mixed_called_mixed"] == 0
    assert scorers["majority class"]["overall"]["false_mixed"] == 0
    table = loso_table(summary)
    assert "| catboost |" in table and "| hand_a |" in table
    stored = json.loads((out / "loso.json").read_text())
    assert stored["folds"] == 5 and "pages" not in stored
    assert (out / "loso.md").read_text() == table
    rows = list(csv.DictReader((out / "loso_pages.csv").open()))
    assert len(rows) == 14
    assert {r["label"] for r in rows} == {"typed", "handwritten", "mixed"}
    assert all(r["catboost:labels"] in ("typed", "handwritten", "mixed") for r in rows)


@needs_tesseract
@needs_fonts
def test_loso_refusals(multi_source: Path, tiny_dataset: Path, cache_dir: Path) -> None:
    with pytest.raises(DatasetError, match="at least 3 sources"):
        loso_evaluate(tiny_dataset, opts=SMALL, cache_dir=cache_dir)
    with pytest.raises(DatasetError, match="unknown source"):
        loso_evaluate(multi_source, opts=SMALL, cache_dir=cache_dir, sources=["nope"])


@needs_tesseract
@needs_fonts
def test_cli_evaluate_loso_on_some_sources(
    multi_source: Path,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    monkeypatch.setattr("app.training.fold.CATBOOST_GRID", SMALL.grids["catboost"])
    code = cli.main(
        [
            "evaluate",
            "--loso",
            "--data",
            str(multi_source),
            "--sources",
            "hand_a,forms",
            "--jobs",
            "1",
            "--out",
            str(tmp_path / "l"),
            "--seed",
            "7",
            "--no-clean-lines",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "Leave-one-source-out" in printed and "| hand_a |" in printed
    assert "| print_a |" not in printed  # only the sources asked for are left out
    # the run says how it was made: the options reached the fits' options
    assert "seed 7, label check off" in printed
    assert (tmp_path / "l" / "loso.md").is_file()
    saved = json.loads((tmp_path / "l" / "loso.json").read_text())
    assert saved["options"] == {"seed": 7, "clean_lines": False, "composites": False}
    code = cli.main(["evaluate", "--loso", "--data", str(multi_source), "--model", "default"])
    assert code == ExitCode.INTERNAL
    assert "takes no --model" in capsys.readouterr().err


def test_cap_lines_keeps_every_small_cell_and_caps_large_ones() -> None:
    from app.training.fold import cap_lines
    from app.training.lines import LineRows

    n = 30
    sources = np.array(["big"] * 20 + ["small"] * 10)
    y = np.array([0] * 15 + [1] * 5 + [1] * 10)
    lines = LineRows(
        x=np.arange(n * 2, dtype=float).reshape(n, 2),
        y=y,
        groups=sources.copy(),
        sources=sources,
        areas=np.ones(n),
        pages=[("p", i) for i in range(n)],
    )
    capped = cap_lines(lines, 6, seed=0)
    cells = {(s, int(v)) for s, v in zip(capped.sources, capped.y, strict=True)}
    assert cells == {("big", 0), ("big", 1), ("small", 1)}
    assert int(((capped.sources == "big") & (capped.y == 0)).sum()) == 6
    assert int(((capped.sources == "big") & (capped.y == 1)).sum()) == 5
    assert int((capped.sources == "small").sum()) == 6
    again = cap_lines(lines, 6, seed=0)
    assert again.pages == capped.pages


def test_composites_pair_labels_across_sources_and_need_both_documents() -> None:
    import hashlib

    from app.training.corpus import composite_jobs
    from app.training.dataset import Document
    from app.training.fold import of_docs

    def sha(name: str) -> str:
        return hashlib.sha256(name.encode()).hexdigest()

    def doc(name: str, label: str, source: str) -> Document:
        return Document(Path(f"{name}.png"), label, sha(name), source, name)

    docs = [
        doc("h1", "handwritten", "letters"),
        doc("h2", "handwritten", "letters"),
        doc("t1", "typed", "invoices"),
        doc("t2", "typed", "letters"),
        doc("m1", "mixed", "forms"),
    ]
    jobs = composite_jobs(docs, lang="eng", timeout=5)
    kinds = {j.path.stem: j.variant.split(":")[0] for j in jobs}
    # t2 has no handwritten page from another source to be signed with; mixed pages get none
    assert kinds == {"h1": "letterhead", "h2": "letterhead", "t1": "signed"}
    by_sha = {d.sha256: d for d in docs}
    for j in jobs:
        other = by_sha[j.variant.split(":")[1]]
        assert other.source != by_sha[j.sha256].source  # never paired within a source
        assert other.label != by_sha[j.sha256].label
        assert j.other == other.path
    assert [j.variant for j in composite_jobs(docs, lang="eng", timeout=5)] == [
        j.variant for j in jobs
    ]
    keys = [(f"{sha('h1')}+{sha('t1')}", 1), (sha("h1"), 1)]
    assert of_docs(keys, {sha("h1")}).tolist() == [False, True]
    assert of_docs(keys, {sha("h1"), sha("t1")}).tolist() == [True, True]


def test_letterhead_and_signature_composites() -> None:
    from app.training.augment import with_letterhead, with_signature
    from tests.helpers import handwritten_page, typed_page

    hand = handwritten_page(60, seed=1)
    typed = typed_page(80, seed=2)
    head = with_letterhead(hand, typed)
    assert head.shape[1] == hand.shape[1]
    assert head.shape[0] > hand.shape[0]
    assert np.array_equal(head[-hand.shape[0] :], hand)  # the handwritten page is untouched
    signed = with_signature(typed, hand)
    assert signed.shape == typed.shape
    h, w = typed.shape
    changed = np.argwhere(signed != typed)
    assert changed.size  # ink was added ...
    assert changed[:, 0].min() > h // 2 and changed[:, 1].min() > w // 2  # ... at the lower right
    assert np.all(signed <= typed)  # and only added: the typed text is never erased


@needs_tesseract
@needs_fonts
def test_composites_enter_a_fold_only_with_both_documents(
    multi_source: Path, cache_dir: Path
) -> None:
    from app.features.cache import FeatureCache
    from app.training.corpus import build_corpus, corpus_jobs
    from app.training.dataset import discover
    from app.training.featurize import featurize
    from app.training.fold import _training_rows

    docs = discover(multi_source).documents
    jobs = corpus_jobs(docs, lang="eng", timeout=30, robust=False, composites=True)
    results, failures = featurize(
        [j for v in jobs.values() for j in v], cache=FeatureCache(cache_dir), workers=2
    )
    assert not failures
    corpus = build_corpus(docs, jobs, results)
    assert corpus.composites.y.size == 12  # every pure page has a partner from another source
    left_out = {d.sha256 for d in docs if d.source == "hand_a"}
    train = {d.sha256 for d in docs} - left_out
    for flag in (False, True):
        rows, _ = _training_rows(corpus, train, FitOptions(composites=flag))
        parts = [p for k in rows.keys for p in k[0].split("+")]
        assert not set(parts) & left_out
        assert any("+" in k[0] for k in rows.keys) == flag


def _noisy_lines(seed: int = 0) -> Any:
    """Six sources of pages whose fragments are one number: typed near 0, handwritten near 4.

    Each handwritten page carries one printed fragment (a frame) under its page's label, each
    typed page one handwritten fragment (a signature); source "hw_print" is handwriting that
    reads as print on every fragment (its kind of writing, not noise; the second number tells
    it apart for a model that has seen it); one handwritten fragment of a typed page has its
    own truth (a person's line verdict).
    """
    from app.training.lines import LineRows

    rng = np.random.default_rng(seed)
    x, x2, y, sources, pages, truth = [], [], [], [], [], []
    for s in range(6):
        source = f"typed{s}" if s < 3 else f"hand{s}"
        label = int(s >= 3)
        for page in range(20):
            for k in [label] * 11 + [1 - label]:
                x.append(rng.normal(4.0 * k, 0.4))
                x2.append(rng.uniform(-1.0, 1.0))
                y.append(label)
                sources.append(source)
                pages.append((f"{source}-{page}", 1))
                truth.append(False)
    for page in range(3):  # handwriting that looks like print, all of it
        for _ in range(10):
            x.append(rng.normal(0.0, 0.4))
            x2.append(6.0)
            y.append(1)
            sources.append("hw_print")
            pages.append((f"hw_print-{page}", 1))
            truth.append(False)
    x.append(4.0)  # a handwritten fragment on a typed page, labelled so by a person
    x2.append(0.0)
    y.append(1)
    sources.append("typed0")
    pages.append(("typed0-0", 1))
    truth.append(True)
    n = len(y)
    return LineRows(
        x=np.column_stack([np.array(x), np.array(x2)]),
        y=np.array(y),
        groups=np.array(sources),
        sources=np.array(sources),
        areas=np.ones(n),
        pages=pages,
        page_label=~np.array(truth),
    )


def test_clean_line_labels_drops_frames_and_signatures_not_a_kind_of_writing() -> None:
    from app.training.fold import clean_line_labels

    lines = _noisy_lines()
    kept, counts = clean_line_labels(lines, FitOptions(seed=0))
    frame = (lines.y == 1) & (lines.x[:, 0] < 2) & (lines.sources != "hw_print")
    signature = (lines.y == 0) & (lines.x[:, 0] > 2)
    assert int(frame.sum()) == int(signature.sum()) == 3 * 20
    dropped = counts["dropped_handwritten"] + counts["dropped_typed"]
    assert kept.y.size == lines.y.size - dropped
    # nearly every frame and signature goes; of the fragments whose label is right, hardly any
    left = ((kept.y == 1) & (kept.x[:, 0] < 2) & (kept.sources != "hw_print")) | (
        (kept.y == 0) & (kept.x[:, 0] > 2)
    )
    assert int(left.sum()) <= 0.1 * 120
    assert dropped - (120 - int(left.sum())) <= 0.02 * (lines.y.size - 120)
    # a kind of writing that reads as the other on every fragment of its pages stays
    assert int((kept.sources == "hw_print").sum()) == 30
    told = ~kept.page_label
    assert int(told.sum()) == 1 and int(kept.y[told][0]) == 1
    # off, nothing is touched: the rows go to the line model as they are
    model = fold_mod.fit_line_model(lines, FitOptions(seed=0, clean_lines=False))
    assert model is not None


def test_line_rows_say_which_labels_are_the_pages() -> None:
    from app.training.lines import LineRows

    plain = LineRows(
        np.ones((2, 2)),
        np.array([0, 1]),
        np.array(["g", "g"]),
        np.array(["s", "s"]),
        np.ones(2),
        [("p", 1), ("p", 1)],
    )
    assert plain.page_label.tolist() == [True, True]
    both = plain.extend(plain, page_prefix="aug:")
    assert both.page_label.tolist() == [True] * 4
