"""On-disk feature cache keyed by (file sha256, variant, FEATURE_VERSION, OCR settings).

Each entry is one small JSON file written atomically. Entries of another feature version live in
another folder and are simply ignored; an unreadable entry is treated as a miss and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from app.features.extract import FEATURE_NAMES, FEATURE_VERSION

log = logging.getLogger(__name__)


class FeatureCache:
    """A folder of JSON entries, one per (file, variant, settings)."""

    def __init__(self, root: Path | None) -> None:
        """Use ``root`` (None disables caching)."""
        self.root = root / f"v{FEATURE_VERSION}" if root is not None else None

    def _path(self, sha256: str, variant: str, settings_key: str) -> Path | None:
        if self.root is None:
            return None
        key = hashlib.sha256(f"{sha256}|{variant}|{settings_key}".encode()).hexdigest()[:32]
        return self.root / key[:2] / f"{key}.json"

    def get(
        self, sha256: str, variant: str, settings_key: str, names: tuple[str, ...] = FEATURE_NAMES
    ) -> list[dict[str, Any]] | None:
        """Return the cached pages, or None on a miss or a corrupt entry."""
        path = self._path(sha256, variant, settings_key)
        if path is None or not path.is_file():
            return None
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            pages = payload["pages"]
            if payload.get("feature_names") != list(names) or not isinstance(pages, list):
                return None
            for page in pages:
                [float(page["features"][name]) for name in names]
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("feature cache entry %s is unreadable (%s); rebuilding it", path, e)
            return None
        return pages

    def put(
        self,
        sha256: str,
        variant: str,
        settings_key: str,
        pages: list[dict[str, Any]],
        names: tuple[str, ...] = FEATURE_NAMES,
    ) -> None:
        """Store the pages atomically (write to a temp file, then rename)."""
        path = self._path(sha256, variant, settings_key)
        if path is None:
            return
        payload = {"feature_names": list(names), "pages": pages}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(payload, fh)
            Path(tmp).replace(path)
        except OSError as e:  # a cache that cannot be written is not fatal
            log.warning("cannot write feature cache entry %s: %s", path, e)
