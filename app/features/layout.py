"""Connected components and text lines at canonical scale."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from app.features.labelling import Labelled
from app.features.normalise import LAYOUT_HEIGHT


@dataclass(frozen=True)
class Components:
    """Text-like connected components (bounding boxes, areas) and their line ids."""

    x0: np.ndarray
    y0: np.ndarray
    x1: np.ndarray
    y1: np.ndarray
    area: np.ndarray
    line: np.ndarray
    label: np.ndarray
    """Each component's id in the label image :func:`find_components` returns."""

    @property
    def height(self) -> np.ndarray:
        """Heights."""
        return np.asarray(self.y1 - self.y0, dtype=np.float64)

    @property
    def width(self) -> np.ndarray:
        """Widths."""
        return np.asarray(self.x1 - self.x0, dtype=np.float64)

    def __len__(self) -> int:
        """Number of components."""
        return int(self.x0.size)


@dataclass(frozen=True)
class Line:
    """A text line segment: its box at canonical scale and the indices of its components."""

    x0: int
    y0: int
    x1: int
    y1: int
    members: np.ndarray

    @property
    def height(self) -> int:
        """Height."""
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        """Width."""
        return self.x1 - self.x0


def line_fit_rms(x: np.ndarray, y: np.ndarray) -> float:
    """Root-mean-square residual of the least-squares straight line through (x, y).

    The closed form of a degree-1 ``np.polyfit`` (x centred, so slope and intercept are
    independent): the same line without a singular value decomposition per text line.
    """
    xc = x - x.mean()
    yc = y - y.mean()
    sxx = float(xc @ xc)
    slope = float(xc @ yc) / sxx if sxx > 0 else 0.0
    resid = yc - slope * xc
    return float(np.sqrt(resid @ resid / resid.size))


def find_components(
    ink: np.ndarray,
    *,
    height: float = LAYOUT_HEIGHT,
    assign_lines: bool = True,
    labelled: Labelled | None = None,
) -> tuple[Components, np.ndarray]:
    """Label the ink and keep components that can be characters or handwritten words.

    Args:
        ink: boolean mask whose characters are about ``height`` pixels tall.
        height: the text height the mask was normalised to.
        assign_lines: also group the components into lines (the ``line`` field).
        labelled: :meth:`Labelled.of` of ``ink`` when the caller has it (or has it turned):
            the mask is then not labelled again.

    Returns:
        The kept components and the label image (component ``i`` is ``labels == label[i]``).
    """
    lab = Labelled.of(ink) if labelled is None else labelled
    labels, box, area = lab.labels, lab.box, lab.area
    empty = np.zeros(0, dtype=np.int64)
    if area.size == 0:
        return Components(empty, empty, empty, empty, empty, empty, empty), labels
    w = box[:, 2] - box[:, 0]
    h = box[:, 3] - box[:, 1]
    fill = area / np.maximum(w * h, 1)
    keep = (
        (area >= 0.02 * height**2)  # specks, dust, JPEG noise
        & (h >= 0.2 * height)
        & (h <= 6 * height)  # pictures, tables, vertical rules
        & ~((w > 8 * height) & (h < 0.6 * height))  # horizontal rules
        & ~((w > 3 * height) & (h > 3 * height) & (fill < 0.08))  # frames, boxes
        # solid round or square blots as tall as a letter: punch holes, bullets, ink blots
        & ~((h >= 0.6 * height) & (fill >= 0.7) & (w >= 0.6 * h) & (w <= 1.6 * h))
        # straight solid bars taller than a letter: pieces of a table's vertical borders
        & ~((h >= 1.5 * height) & (w <= 0.2 * h) & (fill >= 0.8))
    )
    idx = np.flatnonzero(keep)
    kept_box = box[idx]
    comps = Components(
        x0=kept_box[:, 0],
        y0=kept_box[:, 1],
        x1=kept_box[:, 2],
        y1=kept_box[:, 3],
        area=area[idx],
        line=(
            _assign_lines(labels, keep, kept_box, idx)
            if assign_lines
            else np.zeros(idx.size, np.int64)
        ),
        label=idx + 1,
    )
    return comps, labels


def _first_pixels(labels: np.ndarray, box: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Column of each component's first pixel in its top row (``box``: x0, y0, x1, y1 rows).

    Reads only the components' top rows (the sum of their widths), not the whole image.
    """
    widths = box[:, 2] - box[:, 0]
    starts = np.concatenate(([0], np.cumsum(widths)[:-1]))
    offsets = np.arange(int(widths.sum())) - np.repeat(starts, widths)
    cols = np.repeat(box[:, 0], widths) + offsets
    hits = labels[np.repeat(box[:, 1], widths), cols] == np.repeat(ids, widths)
    # every top row holds at least one pixel of its component: the first hit of each segment
    first = np.flatnonzero(hits)
    return np.asarray(cols[first[np.searchsorted(first, starts)]])


def _assign_lines(
    labels: np.ndarray, keep: np.ndarray, box: np.ndarray, idx: np.ndarray
) -> np.ndarray:
    """Smear text horizontally (run-length smoothing) and label the smeared rows as lines."""
    if idx.size == 0:
        return np.zeros(0, dtype=np.int64)
    gap = round(1.2 * LAYOUT_HEIGHT) | 1
    # Work inside the kept components' bounding box, widened by the smear's reach: outside it
    # there is nothing to smear, so the lines (and their raster order) are those of the page.
    reach = gap // 2 + 1
    top, bottom = int(box[:, 1].min()), int(box[:, 3].max())
    left = max(0, int(box[:, 0].min()) - reach)
    right = min(labels.shape[1], int(box[:, 2].max()) + reach)
    part = labels[top:bottom, left:right]
    if keep.all():
        mask = part > 0
    else:
        lut = np.zeros(keep.size + 1, dtype=np.uint8)
        lut[1:] = keep
        mask = np.take(lut, part).view(bool)
    smeared = ndimage.maximum_filter1d(mask.view(np.uint8), size=gap, axis=1) > 0
    line_labels, _ = ndimage.label(smeared, structure=np.ones((3, 3), dtype=bool))
    # a component lies inside one smeared line: one pixel of it tells which
    xs = _first_pixels(labels, box, idx + 1)
    return np.asarray(line_labels[box[:, 1] - top, xs - left], dtype=np.int64)


def merge_segments(segments: list[Line], *, gap: float = 2.5) -> list[Line]:
    """Join segments that sit side by side on one text line (words of a handwritten line).

    Two segments join when they overlap vertically by at least half the smaller height and the
    horizontal gap between them is under ``gap`` times the taller height.
    """
    if not segments:
        return []
    boxes = np.array([(s.x0, s.y0, s.x1, s.y1) for s in segments], dtype=np.float64)
    parent = list(range(len(segments)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    heights = boxes[:, 3] - boxes[:, 1]
    for i in range(len(segments)):
        overlap = np.minimum(boxes[:, 3], boxes[i, 3]) - np.maximum(boxes[:, 1], boxes[i, 1])
        h_gap = np.maximum(boxes[:, 0], boxes[i, 0]) - np.minimum(boxes[:, 2], boxes[i, 2])
        near = (overlap >= 0.5 * np.minimum(heights, heights[i])) & (
            h_gap < gap * np.maximum(heights, heights[i])
        )
        for j in np.flatnonzero(near):
            if j != i:
                parent[find(int(j))] = find(i)
    groups: dict[int, list[Line]] = {}
    for i, seg in enumerate(segments):
        groups.setdefault(find(i), []).append(seg)
    merged = []
    for members in groups.values():
        idx = np.concatenate([m.members for m in members])
        merged.append(
            Line(
                x0=min(m.x0 for m in members),
                y0=min(m.y0 for m in members),
                x1=max(m.x1 for m in members),
                y1=max(m.y1 for m in members),
                members=idx,
            )
        )
    merged.sort(key=lambda ln: (ln.y0, ln.x0))
    return merged


def group_lines(comps: Components, *, min_members: int = 2) -> list[Line]:
    """Group components into lines; drop lines that are too thin or too tall to be text."""
    if len(comps) == 0:
        return []
    order = np.argsort(comps.line, kind="stable")
    ids, starts = np.unique(comps.line[order], return_index=True)
    lines: list[Line] = []
    for k, _line_id in enumerate(ids):
        end = starts[k + 1] if k + 1 < len(starts) else order.size
        members = order[starts[k] : end]
        if members.size < min_members:
            continue
        members = members[np.argsort(comps.x0[members], kind="stable")]
        line = Line(
            x0=int(comps.x0[members].min()),
            y0=int(comps.y0[members].min()),
            x1=int(comps.x1[members].max()),
            y1=int(comps.y1[members].max()),
            members=members,
        )
        if 0.5 * LAYOUT_HEIGHT <= line.height <= 8 * LAYOUT_HEIGHT and (
            min_members == 1 or line.width >= 1.5 * line.height
        ):
            lines.append(line)
    lines.sort(key=lambda ln: (ln.y0, ln.x0))
    return lines


def join_vertical(fragments: list[Line], *, min_glyphs: int = 4) -> list[Line]:
    """Join one-glyph fragments stacked in a column into one fragment (text printed sideways).

    A Bates number or an archive stamp printed up the margin comes out of the horizontal
    smearing as one fragment per digit; as a column of ``min_glyphs`` or more it is one item, as
    on the page, not a row of separate handwritten-looking marks.
    """
    single = [
        i for i, f in enumerate(fragments) if f.members.size <= 2 and f.width <= 1.6 * LAYOUT_HEIGHT
    ]
    if len(single) < min_glyphs:
        return fragments
    boxes = np.array(
        [(fragments[i].x0, fragments[i].y0, fragments[i].x1, fragments[i].y1) for i in single],
        dtype=np.float64,
    )
    parent = list(range(len(single)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    widths = boxes[:, 2] - boxes[:, 0]
    for k in range(len(single)):
        overlap = np.minimum(boxes[:, 2], boxes[k, 2]) - np.maximum(boxes[:, 0], boxes[k, 0])
        gap = np.maximum(boxes[:, 1], boxes[k, 1]) - np.minimum(boxes[:, 3], boxes[k, 3])
        near = (overlap >= 0.5 * np.minimum(widths, widths[k])) & (gap <= 1.2 * LAYOUT_HEIGHT)
        for j in np.flatnonzero(near):
            if j != k:
                parent[find(int(j))] = find(k)
    groups: dict[int, list[int]] = {}
    for k in range(len(single)):
        groups.setdefault(find(k), []).append(single[k])
    joined: set[int] = set()
    out = []
    for members in groups.values():
        if len(members) < min_glyphs:
            continue
        joined.update(members)
        parts = [fragments[i] for i in members]
        out.append(
            Line(
                x0=min(f.x0 for f in parts),
                y0=min(f.y0 for f in parts),
                x1=max(f.x1 for f in parts),
                y1=max(f.y1 for f in parts),
                members=np.concatenate([f.members for f in parts]),
            )
        )
    if not joined:
        return fragments
    out += [f for i, f in enumerate(fragments) if i not in joined]
    out.sort(key=lambda ln: (ln.y0, ln.x0))
    return out
