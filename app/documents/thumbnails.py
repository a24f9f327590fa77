"""Small PNG previews of pages, as data: URLs (the upload page shows them)."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image


def thumbnail(image: np.ndarray, longest: int = 900) -> str:
    """A PNG of ``image`` at most ``longest`` pixels on its longer side, as a data: URL."""
    img = Image.fromarray(image)
    img.thumbnail((longest, longest), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
