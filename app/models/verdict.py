"""One coherent page verdict from all the evidence: page probability and handwritten share.

The two pieces of evidence are put on one scale, log-odds: the page model's probability ``p`` and
the handwritten share ``s`` of the text-line area (clipped to [0.02, 0.98]). A logistic
combination ``q = sigmoid(a logit(p) + b logit(s) + c)``, fitted on out-of-fold predictions of the
training sources only, says handwritten (q >= 0.5) or typed: a typed page with a signature stays
typed, a handwritten letter under a printed letterhead stays handwritten.

``mixed`` is a definition, not a disagreement: typed lines and handwritten lines each hold at
least :data:`MIXED_MIN_SHARE` of the line area (a printed form or register filled in by hand),
*and* the combined evidence is not clearly one kind (:data:`MIXED_MAX_CONFIDENCE`). Neither bound
is fitted; see the README for how they were set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

LABEL_HANDWRITTEN = "handwritten"
LABEL_TYPED = "typed"
LABEL_MIXED = "mixed"

MIXED_MIN_SHARE = 0.3
"""Typed and handwritten lines must each hold at least this share of the line area for mixed."""
MIXED_MAX_CONFIDENCE = 0.9
"""A page whose combined probability of one kind is at least this is never mixed."""
_EPS = 1e-4
SHARE_CLIP = 0.02
"""Shares are clipped to [0.02, 0.98] before their log-odds: a page of 50 lines, one of them
called the other kind, is as sure as the line model can be."""


def _logit(p: np.ndarray, eps: float = _EPS) -> np.ndarray:
    q = np.clip(p, eps, 1 - eps)
    return np.asarray(np.log(q / (1 - q)))


def _design(p: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Columns: page log-odds, share log-odds (share unknown: the page's)."""
    s = np.where(np.isnan(share), p, share)
    return np.column_stack([_logit(p), _logit(s, SHARE_CLIP)])


def _logit1(p: float, eps: float) -> float:
    q = min(max(p, eps), 1 - eps)
    return math.log(q / (1 - q))


@dataclass(frozen=True)
class VerdictRule:
    """``handwritten`` iff ``a logit(p) + b logit(share) + c >= 0``, unless mixed."""

    a: float = 1.0
    b: float = 0.0
    c: float = 0.0
    mixed_min_share: float = MIXED_MIN_SHARE
    mixed_max_confidence: float = MIXED_MAX_CONFIDENCE

    def score(self, p: float, share: float | None) -> float:
        """Combined probability of handwriting (before the mixed test)."""
        s = p if share is None or math.isnan(share) else share
        z = self.a * _logit1(p, _EPS) + self.b * _logit1(s, SHARE_CLIP) + self.c
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def label(self, p: float, share: float | None) -> str:
        """The page label (``handwritten``, ``typed`` or ``mixed``)."""
        q = self.score(p, share)
        if share is not None and not math.isnan(share):
            m = self.mixed_min_share
            top = self.mixed_max_confidence
            if m <= share <= 1 - m and 1 - top < q < top:
                return LABEL_MIXED
        return LABEL_HANDWRITTEN if q >= 0.5 else LABEL_TYPED

    def as_dict(self) -> dict[str, float]:
        """What metadata.json stores."""
        return {
            "a": self.a,
            "b": self.b,
            "c": self.c,
            "mixed_min_share": self.mixed_min_share,
            "mixed_max_confidence": self.mixed_max_confidence,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> VerdictRule:
        """The rule stored by :meth:`as_dict` (the page model alone when ``d`` is empty)."""
        if not d:
            return cls()
        return cls(
            a=float(d["a"]),
            b=float(d["b"]),
            c=float(d["c"]),
            mixed_min_share=float(d.get("mixed_min_share", MIXED_MIN_SHARE)),
            mixed_max_confidence=float(d.get("mixed_max_confidence", MIXED_MAX_CONFIDENCE)),
        )


def fit_rule(
    p: np.ndarray, share: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None
) -> VerdictRule:
    """Fit the combination on out-of-fold (p, share) of pure training pages (y: 1 handwritten).

    Falls back to the page model alone when one class is missing.
    """
    if p.size == 0 or len(np.unique(y)) < 2:
        return VerdictRule()
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415 - training only

    lr = LogisticRegression(C=1.0)
    lr.fit(_design(p, share), y, sample_weight=weights)
    a, b = (float(v) for v in lr.coef_[0])
    if a <= 0:  # the page model must never count against its own verdict
        return VerdictRule()
    return VerdictRule(a=a, b=b, c=float(lr.intercept_[0]))


def labels_of(rule: VerdictRule, p: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Final labels of many pages (share NaN: the page has no text line)."""
    return np.array(
        [
            rule.label(float(pi), None if np.isnan(si) else float(si))
            for pi, si in zip(p, share, strict=True)
        ],
        dtype=object,
    ).astype(str)
