"""Row tables (dataclasses of aligned columns) joined end to end, field by field."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def concat_rows(a: T, b: T) -> T:
    """``a``'s rows followed by ``b``'s: 2-D arrays stacked, 1-D arrays and lists joined."""
    joined: dict[str, Any] = {}
    for f in dataclasses.fields(a):  # type: ignore[arg-type]  # T is always a dataclass here
        left, right = getattr(a, f.name), getattr(b, f.name)
        if isinstance(left, np.ndarray):
            joined[f.name] = (
                np.vstack([left, right]) if left.ndim == 2 else np.concatenate([left, right])
            )
        else:
            joined[f.name] = list(left) + list(right)
    return type(a)(**joined)


def select_rows(rows: T, mask: np.ndarray) -> T:
    """The rows of ``rows`` where the boolean ``mask`` is true (arrays indexed, lists filtered)."""
    mask = np.asarray(mask, dtype=bool)
    picked: dict[str, Any] = {}
    for f in dataclasses.fields(rows):  # type: ignore[arg-type]  # T is always a dataclass here
        value = getattr(rows, f.name)
        if isinstance(value, np.ndarray):
            picked[f.name] = value[mask]
        else:
            picked[f.name] = [v for v, m in zip(value, mask, strict=True) if m]
    return type(rows)(**picked)
