"""Is a page ``mixed``? A detection question answered from where the handwriting is.

By the label rule (``LABELS.md`` of the dev data) a page is mixed when it holds typed content and
handwritten content beyond marks of assent: a note of a line or more, or three or more entries
that carry information. Printed frame (letterhead, prompts, headings) and marks of assent
(signatures, initials, ticks) do not count. So the evidence is not the handwritten *share* of
the page but the handwritten *items* on it and how they sit against the print: the line model
calls every fragment (a fragment of a row is judged apart from the print beside it), handwritten
fragments on one row are joined into items, and a few numbers describe them:

- ``mixed_logit_q``: the combined page verdict's log-odds (typed pages with handwriting on them
  are what ``mixed`` mostly is),
- ``mixed_hw_share`` and ``mixed_typed_share``: line area called handwritten / typed,
- ``mixed_items`` and ``mixed_sure_items``: handwritten items at least a word long (wider than
  WORD_ASPECT times their height: a tick, a dot or a stray mark is not an entry), and those
  whose fragments the line model is sure of (p >= 0.8), log1p,
- ``mixed_hw_text``: how much sure handwriting there is besides the widest item (its width in
  text heights, log1p): a signed typed page has one wide item and little else, a form filled
  in by hand has many,
- ``mixed_typed_text``: how much sure print there is (width in text heights of the fragments
  the line model is sure are typed, p < 0.2, log1p), and ``mixed_both``: the smaller of the two
  amounts, the "and" of the definition (a linear model cannot form it from the two alone),
- ``mixed_beside_print``: share of the handwritten item area written on a row that also holds
  print (a form filled in beside its printed prompts, a total beside a receipt line),
- ``mixed_both_beside``: ``mixed_both`` times ``mixed_beside_print``: print and handwriting on
  the same rows (a form filled in, a note beside a paragraph), where a printed passage above
  its handwritten copy (an IAM form: frame) keeps them on rows of their own,
- ``mixed_widest_item``: width of the widest handwritten item in text heights (log1p): a note
  of a line of words is wide, a tick or initials are not,
- ``mixed_typed_fragments``: printed fragments (log1p): how much print there is to be mixed with.

A logistic regression on these, fitted inside each training fold on out-of-fold line
probabilities (pages of a source are never scored by a line model that learned from that
source), with its threshold chosen on the same out-of-fold scores, says mixed or not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MIXED_FEATURES = (
    "mixed_logit_q",
    "mixed_hw_share",
    "mixed_typed_share",
    "mixed_items",
    "mixed_sure_items",
    "mixed_hw_text",
    "mixed_typed_text",
    "mixed_both",
    "mixed_beside_print",
    "mixed_both_beside",
    "mixed_widest_item",
    "mixed_typed_fragments",
)
SURE = 0.8
"""A fragment the line model calls handwritten with at least this probability is a sure one."""
WORD_ASPECT = 1.5
"""An item narrower than this many times its height is a mark (a tick, a dot), not an entry."""
ROW_OVERLAP = 0.5
"""Two boxes are on one row when they overlap vertically by this share of the lower one."""
ITEM_GAP = 2.5
"""Handwritten fragments on one row closer than this many text heights make one item."""
MAX_FALSE_MIXED = 0.02
"""The detector's threshold keeps out-of-fold false ``mixed`` on pure pages under this share."""


def _same_row(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For box ``a`` (x0, y0, x1, y1) and boxes ``b``: which share a row with it."""
    overlap = np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1])
    heights = np.minimum(a[3] - a[1], b[:, 3] - b[:, 1])
    return np.asarray(overlap >= ROW_OVERLAP * np.maximum(heights, 1))


def handwritten_items(boxes: np.ndarray, hand: np.ndarray) -> list[np.ndarray]:
    """Handwritten fragments (``hand``) joined into items: same row, gap under ITEM_GAP heights.

    Returns the fragment indices of each item.
    """
    idx = np.flatnonzero(hand)
    if idx.size == 0:
        return []
    parent = {int(i): int(i) for i in idx}

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    sub = boxes[idx]
    heights = np.maximum(sub[:, 3] - sub[:, 1], 1)
    for k, i in enumerate(idx):
        gap = np.maximum(sub[:, 0], sub[k, 0]) - np.minimum(sub[:, 2], sub[k, 2])
        near = _same_row(sub[k], sub) & (gap < ITEM_GAP * np.maximum(heights, heights[k]))
        for j in idx[near]:
            parent[find(int(j))] = find(int(i))
    groups: dict[int, list[int]] = {}
    for i in idx:
        groups.setdefault(find(int(i)), []).append(int(i))
    return [np.array(g) for g in groups.values()]


def mixed_evidence(boxes: np.ndarray, p: np.ndarray, q: float) -> np.ndarray:
    """The :data:`MIXED_FEATURES` of one page from its fragments' boxes and probabilities.

    Args:
        boxes: (n, 4) fragment boxes (x0, y0, x1, y1), any pixel unit.
        p: (n,) probability that each fragment is handwritten.
        q: the page's combined probability of handwriting (:class:`VerdictRule` score).
    """
    q = min(max(q, 1e-4), 1 - 1e-4)
    out = dict.fromkeys(MIXED_FEATURES, 0.0)
    out["mixed_logit_q"] = math.log(q / (1 - q))
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if boxes.shape[0] == 0:
        return np.array([out[n] for n in MIXED_FEATURES])
    area = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    total = max(float(area.sum()), 1.0)
    hand = p >= 0.5
    out["mixed_hw_share"] = float(area[hand].sum()) / total
    out["mixed_typed_share"] = float(area[~hand].sum()) / total
    out["mixed_typed_fragments"] = math.log1p(int((~hand).sum()))
    items = handwritten_items(boxes, hand)
    typed = boxes[~hand]
    median_h = max(float(np.median(boxes[:, 3] - boxes[:, 1])), 1.0)
    words = 0
    sure_widths: list[float] = []
    beside = 0.0
    widest = 0.0
    item_area = 0.0
    for members in items:
        x0, y0 = boxes[members, 0].min(), boxes[members, 1].min()
        x1, y1 = boxes[members, 2].max(), boxes[members, 3].max()
        width = (x1 - x0) / median_h
        a = float(area[members].sum())
        item_area += a
        if typed.shape[0] and _same_row(np.array([x0, y0, x1, y1]), typed).any():
            beside += a
        widest = max(widest, width)
        if x1 - x0 < WORD_ASPECT * (y1 - y0):
            continue
        words += 1
        if float(np.mean(p[members])) >= SURE:
            sure_widths.append(width)
    out["mixed_items"] = math.log1p(words)
    out["mixed_sure_items"] = math.log1p(len(sure_widths))
    out["mixed_hw_text"] = math.log1p(sum(sure_widths) - max(sure_widths, default=0.0))
    sure_typed = p < 1.0 - SURE
    heights = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
    typed_text = float(((boxes[:, 2] - boxes[:, 0]) / np.maximum(heights, median_h))[sure_typed].sum())
    out["mixed_typed_text"] = math.log1p(typed_text)
    out["mixed_both"] = min(out["mixed_typed_text"], out["mixed_hw_text"])
    out["mixed_beside_print"] = beside / item_area if item_area > 0 else 0.0
    out["mixed_both_beside"] = out["mixed_both"] * out["mixed_beside_print"]
    out["mixed_widest_item"] = math.log1p(widest)
    return np.array([out[n] for n in MIXED_FEATURES])


@dataclass(frozen=True)
class MixedDetector:
    """``mixed`` iff ``sigmoid(w . (x - mean) / scale + b) >= threshold``."""

    weights: tuple[float, ...] = ()
    bias: float = 0.0
    mean: tuple[float, ...] = ()
    scale: tuple[float, ...] = ()
    threshold: float = 1.0
    names: tuple[str, ...] = field(default=MIXED_FEATURES)

    @property
    def enabled(self) -> bool:
        """A detector that can say mixed (an empty one never does)."""
        return bool(self.weights) and self.threshold <= 1.0 - 1e-9

    def score(self, x: np.ndarray) -> np.ndarray:
        """Probability of ``mixed`` for each row of ``x`` (MIXED_FEATURES columns)."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if not self.weights:
            return np.zeros(x.shape[0])
        z = ((x - np.array(self.mean)) / np.array(self.scale)) @ np.array(self.weights)
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z + self.bias, -50, 50))))

    def is_mixed(self, x: np.ndarray) -> np.ndarray:
        """Whether each row is called mixed."""
        return np.asarray(self.score(x) >= self.threshold) & self.enabled

    def as_dict(self) -> dict[str, Any]:
        """What metadata.json stores."""
        return {
            "names": list(self.names),
            "weights": list(self.weights),
            "bias": self.bias,
            "mean": list(self.mean),
            "scale": list(self.scale),
            "threshold": self.threshold,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> MixedDetector:
        """The detector stored by :meth:`as_dict` (one that never says mixed when ``d`` is empty)."""
        if not d:
            return cls()
        names = tuple(str(n) for n in d.get("names", MIXED_FEATURES))
        if names != MIXED_FEATURES:
            return cls()
        return cls(
            weights=tuple(float(v) for v in d["weights"]),
            bias=float(d["bias"]),
            mean=tuple(float(v) for v in d["mean"]),
            scale=tuple(float(v) for v in d["scale"]),
            threshold=float(d["threshold"]),
        )


def choose_threshold(
    score: np.ndarray, is_mixed: np.ndarray, weights: np.ndarray, max_false: float
) -> float:
    """The lowest threshold whose weighted false-mixed rate on pure rows stays <= ``max_false``.

    1.0 (never mixed) when no mixed row scores above every allowed threshold.
    """
    pure = ~is_mixed
    if not is_mixed.any() or not pure.any():
        return 1.0
    w_pure = weights[pure] / weights[pure].sum()
    best = 1.0
    for t in np.unique(score[is_mixed])[::-1]:
        false_rate = float(w_pure[score[pure] >= t].sum())
        if false_rate > max_false:
            break
        best = float(t)
    return best


def fit_detector(
    x: np.ndarray,
    is_mixed: np.ndarray,
    weights: np.ndarray,
    *,
    oof_score: np.ndarray | None = None,
    max_false: float = MAX_FALSE_MIXED,
) -> MixedDetector:
    """A logistic regression of mixed against pure pages, weighted (``weights``: per row).

    The threshold is chosen on ``oof_score`` (out-of-fold scores of the same rows) when given,
    else on the fitted scores. No mixed row, or no pure row: a detector that never says mixed.
    """
    if not is_mixed.any() or is_mixed.all():
        return MixedDetector()
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415 - training only

    mean = x.mean(axis=0)
    scale = np.where(x.std(axis=0) > 1e-9, x.std(axis=0), 1.0)
    z = (x - mean) / scale
    w = weights.copy()
    # the two classes weigh the same in the fit; the threshold then sets the operating point
    w[is_mixed] *= w[~is_mixed].sum() / max(w[is_mixed].sum(), 1e-12)
    lr = LogisticRegression(C=0.3)
    lr.fit(z, is_mixed.astype(int), sample_weight=w)
    detector = MixedDetector(
        weights=tuple(float(v) for v in lr.coef_[0]),
        bias=float(lr.intercept_[0]),
        mean=tuple(float(v) for v in mean),
        scale=tuple(float(v) for v in scale),
        threshold=1.0,
    )
    scores = oof_score if oof_score is not None else detector.score(x)
    threshold = choose_threshold(scores, is_mixed, weights, max_false)
    return MixedDetector(
        weights=detector.weights,
        bias=detector.bias,
        mean=detector.mean,
        scale=detector.scale,
        threshold=threshold,
    )
