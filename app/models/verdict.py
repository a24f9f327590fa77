"""One coherent page verdict from all the evidence: page probability and handwritten share.

``mixed`` is a definition, not a disagreement: a page is mixed when typed lines and handwritten
lines each hold at least :data:`MIXED_MIN_SHARE` of its text-line area (a printed form or register
filled in by hand). The bound was fixed from that definition before any leave-one-source-out
result was seen, and no fold changes it. Otherwise the page is handwritten or typed by a
logistic combination of the page model's log-odds and the handwritten share, fitted on
out-of-fold predictions of the training sources only (so a typed page with a signature stays
typed, a handwritten letter with a printed letterhead stays handwritten).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

LABEL_HANDWRITTEN = "handwritten"
LABEL_TYPED = "typed"
LABEL_MIXED = "mixed"

MIXED_MIN_SHARE = 0.3
"""Typed and handwritten lines must each hold at least this share of the line area for mixed."""
_EPS = 1e-4


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, _EPS, 1 - _EPS)
    return np.asarray(np.log(q / (1 - q)))


def _design(p: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Columns: page log-odds, handwritten share minus one half (share unknown: from p)."""
    s = np.where(np.isnan(share), p, share)
    return np.column_stack([_logit(p), s - 0.5])


@dataclass(frozen=True)
class VerdictRule:
    """``handwritten`` iff ``a * logit(p) + b * (share - 0.5) + c >= 0``, unless mixed."""

    a: float = 1.0
    b: float = 0.0
    c: float = 0.0
    mixed_min_share: float = MIXED_MIN_SHARE

    def score(self, p: float, share: float | None) -> float:
        """Combined probability of handwriting (before the mixed test)."""
        s = p if share is None or math.isnan(share) else share
        q = min(max(p, _EPS), 1 - _EPS)
        z = self.a * math.log(q / (1 - q)) + self.b * (s - 0.5) + self.c
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def label(self, p: float, share: float | None) -> str:
        """The page label (``handwritten``, ``typed`` or ``mixed``)."""
        if share is not None and not math.isnan(share):
            m = self.mixed_min_share
            if m <= share <= 1 - m:
                return LABEL_MIXED
        return LABEL_HANDWRITTEN if self.score(p, share) >= 0.5 else LABEL_TYPED

    def as_dict(self) -> dict[str, float]:
        """What metadata.json stores."""
        return {"a": self.a, "b": self.b, "c": self.c, "mixed_min_share": self.mixed_min_share}

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
        )


def fit_rule(
    p: np.ndarray, share: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None
) -> VerdictRule:
    """Fit the combination on out-of-fold (p, share) of pure training pages (y: 1 handwritten).

    Falls back to the page model alone when one class is missing.
    """
    if p.size == 0 or len(np.unique(y)) < 2:
        return VerdictRule()
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
        ]
    )
