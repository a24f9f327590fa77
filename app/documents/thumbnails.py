"""Page previews as data: URLs (the upload page shows them small, and full size on a click)."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

PREVIEW_LONGEST = 1400
"""Long side of a preview: a handwritten figure beside a printed field stays legible."""


def thumbnail(image: np.ndarray, longest: int = PREVIEW_LONGEST) -> str:
    """A JPEG of ``image`` at most ``longest`` pixels on its longer side, as a data: URL.

    JPEG (quality 80), not PNG: a scan's preview is a third to a tenth of the bytes.
    """
    img = Image.fromarray(image)
    img.thumbnail((longest, longest), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
