"""One coherent page verdict from all the evidence: page probability, line verdicts, their layout.

The two pieces of evidence for handwritten-or-typed are put on one scale, log-odds: the page
model's probability ``p`` and the handwritten share ``s`` of the text-line area (clipped to
[0.02, 0.98]). A logistic combination ``q = sigmoid(a logit(p) + b logit(s) + c)``, fitted on
out-of-fold predictions of the training sources only, says handwritten (q >= 0.5) or typed: a
typed page with a signature stays typed, a handwritten letter under a printed letterhead stays
handwritten.

``mixed`` is a detection question (:mod:`app.models.mixed`): the rule's detector looks at the
handwritten items the line model found and how they sit against the print, and says whether
the page holds handwritten content beyond frame and marks of assent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.models.mixed import MixedDetector, mixed_evidence

LABEL_HANDWRITTEN = "handwritten"
LABEL_TYPED = "typed"
LABEL_MIXED = "mixed"

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


Fragments = tuple[np.ndarray, np.ndarray]
"""A page's text fragments: (n, 4) boxes and (n,) probabilities that each is handwritten."""


def page_share(frags: Fragments | None) -> float:
    """Handwritten share of a page's fragment box area (NaN: no fragment).

    The one definition: serving (:mod:`app.models.predict`) and training (out-of-fold shares)
    both use it.
    """
    if frags is None or frags[0].shape[0] == 0:
        return float("nan")
    boxes, p = frags
    area = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    total = float(area.sum())
    return float(area[p >= 0.5].sum() / total) if total > 0 else 0.0


@dataclass(frozen=True)
class VerdictRule:
    """``handwritten`` iff ``a logit(p) + b logit(share) + c >= 0``, unless ``mixed`` says so."""

    a: float = 1.0
    b: float = 0.0
    c: float = 0.0
    mixed: MixedDetector = MixedDetector()

    def score(self, p: float, share: float | None) -> float:
        """Combined probability of handwriting (before the mixed test)."""
        s = p if share is None or math.isnan(share) else share
        z = self.a * _logit1(p, _EPS) + self.b * _logit1(s, SHARE_CLIP) + self.c
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def evidence(self, p: float, share: float | None, fragments: Fragments) -> np.ndarray:
        """The mixed detector's features of one page."""
        return mixed_evidence(fragments[0], fragments[1], self.score(p, share))

    def label(self, p: float, share: float | None, fragments: Fragments | None = None) -> str:
        """The page label (``handwritten``, ``typed`` or ``mixed``).

        ``mixed`` needs the page's fragments (without them: handwritten or typed).
        """
        q = self.score(p, share)
        if fragments is not None and fragments[0].shape[0] and self.mixed.enabled:
            if bool(self.mixed.is_mixed(self.evidence(p, share, fragments))[0]):
                return LABEL_MIXED
        return LABEL_HANDWRITTEN if q >= 0.5 else LABEL_TYPED

    def with_mixed(self, detector: MixedDetector) -> VerdictRule:
        """This rule with another mixed detector."""
        return VerdictRule(a=self.a, b=self.b, c=self.c, mixed=detector)

    def as_dict(self) -> dict[str, Any]:
        """What metadata.json stores."""
        return {"a": self.a, "b": self.b, "c": self.c, "mixed": self.mixed.as_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> VerdictRule:
        """The rule stored by :meth:`as_dict` (the page model alone when ``d`` is empty)."""
        if not d:
            return cls()
        return cls(
            a=float(d["a"]),
            b=float(d["b"]),
            c=float(d["c"]),
            mixed=MixedDetector.from_dict(d.get("mixed")),
        )


def fit_rule(
    p: np.ndarray, share: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None
) -> VerdictRule:
    """Fit the combination on out-of-fold (p, share) of pure training pages (y: 1 handwritten).

    Neither piece of evidence may count against its own verdict: a negative weight (the other
    one explains the same pages better) is dropped and the rule refitted on the other alone.
    Falls back to the page model alone when one class is missing.
    """
    if p.size == 0 or len(np.unique(y)) < 2:
        return VerdictRule()
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415 - training only

    design = _design(p, share)
    lr = LogisticRegression(C=1.0)
    lr.fit(design, y, sample_weight=weights)
    a, b = (float(v) for v in lr.coef_[0])
    if a > 0 and b >= 0:
        return VerdictRule(a=a, b=b, c=float(lr.intercept_[0]))
    keep = 1 if a <= 0 else 0  # the share alone, or the page model alone
    lr.fit(design[:, [keep]], y, sample_weight=weights)
    w = float(lr.coef_[0][0])
    if w <= 0:
        return VerdictRule()
    c = float(lr.intercept_[0])
    return VerdictRule(a=0.0, b=w, c=c) if keep == 1 else VerdictRule(a=w, b=0.0, c=c)


def labels_of(
    rule: VerdictRule,
    p: np.ndarray,
    share: np.ndarray,
    fragments: list[Fragments | None] | None = None,
) -> np.ndarray:
    """Final labels of many pages (share NaN: the page has no text line).

    ``fragments``: each page's fragments (None for all: never mixed).
    """
    frags = fragments if fragments is not None else [None] * p.size
    return np.array(
        [
            rule.label(float(pi), None if np.isnan(si) else float(si), fi)
            for pi, si, fi in zip(p, share, frags, strict=True)
        ],
        dtype=object,
    ).astype(str)
