"""Connected components of an ink mask, labelled once and shared by every step that needs them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Labelled:
    """Every connected component of an ink mask: the label image, boxes and areas.

    ``box`` rows are (x0, y0, x1, y1) of component ``i + 1`` of ``labels``; ``area`` its pixels.
    """

    labels: np.ndarray
    box: np.ndarray
    area: np.ndarray

    @classmethod
    def of(cls, ink: np.ndarray, connectivity: int = 8) -> Labelled:
        """Label ``ink``: 8-connected (diagonal neighbours join), or 4-connected."""
        structure = np.ones((3, 3), dtype=bool) if connectivity == 8 else None
        labels, n = ndimage.label(ink, structure=structure)
        if n == 0:
            return cls(labels, np.zeros((0, 4), dtype=np.int64), np.zeros(0, dtype=np.int64))
        slices = ndimage.find_objects(labels)
        box = np.array(
            [(s[1].start, s[0].start, s[1].stop, s[0].stop) for s in slices], dtype=np.int64
        )
        # count the ink pixels only: the same areas as counting every label of the image
        return cls(
            labels, box, np.bincount(labels[np.asarray(ink, dtype=bool)], minlength=n + 1)[1:]
        )

    def quarter_turned(self, k: int) -> Labelled:
        """The same labelling of the ink turned by ``k`` quarter turns (as ``np.rot90``).

        A turn maps components onto components (neither connectivity has a preferred direction), so
        the turned mask needs no labelling of its own: the label image is a turned view and the
        boxes are turned. The ids keep this labelling's order, not the raster order of the turned
        mask.
        """
        h, w = self.labels.shape
        x0, y0, x1, y1 = self.box.T
        k %= 4
        if k == 1:  # pixel (y, x) -> (w - 1 - x, y)
            box = np.stack([y0, w - x1, y1, w - x0], axis=1)
        elif k == 2:  # pixel (y, x) -> (h - 1 - y, w - 1 - x)
            box = np.stack([w - x1, h - y1, w - x0, h - y0], axis=1)
        elif k == 3:  # pixel (y, x) -> (x, h - 1 - y)
            box = np.stack([h - y1, x0, h - y0, x1], axis=1)
        else:
            box = self.box
        return Labelled(np.rot90(self.labels, k), box.reshape(-1, 4), self.area)
