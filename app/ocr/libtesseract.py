"""In-process tesseract: libtesseract's C API through :mod:`ctypes`, one engine per process.

``pytesseract`` starts a new ``tesseract`` process for every call, and that start (loading the
language model) costs about 65 ms, a quarter of a whole page's feature extraction. Here each
worker process loads the model once and keeps it. It is the same library the ``tesseract`` command
runs, with the same language data and settings, so it returns the same words and confidences (a
test compares the two on the same images); :mod:`app.ocr.tesseract` falls back to the command when
the library cannot be loaded or its version differs from the command's.

Timeouts: a recognition is given a deadline through tesseract's progress monitor
(``ETEXT_DESC``); tesseract checks it between words and gives up, and the call is reported as a
timeout. Layout analysis before recognition cannot be interrupted, which is why the feature stage
only sends bounded images (a montage of a few text lines).
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import logging
import os
import threading
import time
from functools import lru_cache

import numpy as np

from app.errors import MissingDependencyError, OcrError, OcrTimeoutError

log = logging.getLogger(__name__)

# libgomp reads this when it is loaded (with libtesseract), so it must be set before
os.environ["OMP_THREAD_LIMIT"] = "1"

SOURCE_DPI = 70
"""The resolution the ``tesseract`` command assumes for an image without one (so both agree)."""

NO_INVERTED_RETRY = {"tessedit_do_invert": "0", "invert_threshold": "0"}
"""Tesseract settings that stop it reading a low-confidence line a second time as a negative.

Tesseract (4.1+) recognises every line whose mean confidence is under 70 again, inverted, in case
it is light text on a dark ground. ``tessedit_do_invert`` switches that off up to tesseract 5;
``invert_threshold`` (5.3+) is what replaces it. A version that knows only one ignores the other.
"""

_VP = ctypes.c_void_p
_PROTOTYPES: dict[str, tuple[object, list[object]]] = {
    "TessVersion": (ctypes.c_char_p, []),
    "TessBaseAPICreate": (_VP, []),
    "TessBaseAPIInit3": (ctypes.c_int, [_VP, ctypes.c_char_p, ctypes.c_char_p]),
    "TessBaseAPISetPageSegMode": (None, [_VP, ctypes.c_int]),
    "TessBaseAPISetVariable": (ctypes.c_int, [_VP, ctypes.c_char_p, ctypes.c_char_p]),
    "TessBaseAPISetImage": (
        None,
        [_VP, _VP, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int],
    ),
    "TessBaseAPISetSourceResolution": (None, [_VP, ctypes.c_int]),
    "TessBaseAPIGetBoolVariable": (
        ctypes.c_int,
        [_VP, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)],
    ),
    "TessBaseAPIGetDoubleVariable": (
        ctypes.c_int,
        [_VP, ctypes.c_char_p, ctypes.POINTER(ctypes.c_double)],
    ),
    "TessBaseAPIRecognize": (ctypes.c_int, [_VP, _VP]),
    "TessBaseAPIGetTsvText": (_VP, [_VP, ctypes.c_int]),
    "TessDeleteText": (None, [_VP]),
    "TessBaseAPIClear": (None, [_VP]),
    "TessBaseAPIEnd": (None, [_VP]),
    "TessBaseAPIDelete": (None, [_VP]),
    "TessMonitorCreate": (_VP, []),
    "TessMonitorSetDeadlineMSecs": (None, [_VP, ctypes.c_int]),
    "TessMonitorDelete": (None, [_VP]),
}


@lru_cache(maxsize=1)
def load_library() -> ctypes.CDLL | None:
    """Libtesseract with the prototypes we call, or None when it is not installed."""
    name = ctypes.util.find_library("tesseract")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        for func, (restype, argtypes) in _PROTOTYPES.items():
            fn = getattr(lib, func)
            fn.restype = restype
            fn.argtypes = argtypes
    except (OSError, AttributeError) as e:
        log.warning("libtesseract found (%s) but unusable: %s", name, e)
        return None
    _quiet_leptonica()
    return lib


L_SEVERITY_NONE = 6


def _quiet_leptonica() -> None:
    """Leptonica's own messages ("Error in boxClipToRectangle") would reach the service's stderr.

    They are warnings about odd layouts, not failures (tesseract reports those by its status);
    the command's went to a pipe that pytesseract discards, so the same happens here.
    """
    for candidate in ("leptonica", "lept"):
        name = ctypes.util.find_library(candidate)
        if name is None:
            continue
        try:
            ctypes.CDLL(name).setMsgSeverity(ctypes.c_int(L_SEVERITY_NONE))
        except (OSError, AttributeError):  # pragma: no cover - a leptonica without the call
            continue
        return


def library_version() -> str | None:
    """The version libtesseract reports (e.g. ``5.3.0``), or None without the library."""
    lib = load_library()
    if lib is None:
        return None
    raw = lib.TessVersion()
    return raw.decode("ascii", "replace") if isinstance(raw, bytes) else None


class Engine:
    """One initialised tesseract (a language set) in this process; calls are serialised."""

    def __init__(self, lib: ctypes.CDLL, lang: str) -> None:
        """Load the language model (the expensive part, done once)."""
        self._lib = lib
        self._lock = threading.Lock()
        self.lang = lang
        self._handle: int | None = lib.TessBaseAPICreate()
        if lib.TessBaseAPIInit3(self._handle, None, lang.encode("ascii")) != 0:
            lib.TessBaseAPIDelete(self._handle)
            self._handle = None
            raise MissingDependencyError(
                f"tesseract cannot load language(s) '{lang}' (install tesseract-ocr-<lang>)"
            )
        # tesseract's diagnostics ("Estimating resolution as ...") would go to the service's
        # stderr; the command's go to a pipe that pytesseract discards. Same here.
        lib.TessBaseAPISetVariable(self._handle, b"debug_file", os.devnull.encode())
        self._defaults = self._read_defaults()
        self._inverted_retry = True
        """Whether the engine is at tesseract's own inverted-reading settings now."""

    def _read_defaults(self) -> dict[str, str]:
        """This tesseract's own values of :data:`NO_INVERTED_RETRY`'s settings (those it knows)."""
        found: dict[str, str] = {}
        flag = ctypes.c_int()
        if self._lib.TessBaseAPIGetBoolVariable(self._handle, b"tessedit_do_invert", flag):
            found["tessedit_do_invert"] = str(int(bool(flag.value)))
        number = ctypes.c_double()
        if self._lib.TessBaseAPIGetDoubleVariable(self._handle, b"invert_threshold", number):
            found["invert_threshold"] = repr(number.value)
        return found

    def tsv(
        self, image: np.ndarray, *, psm: int, timeout: float, retry_inverted: bool = True
    ) -> str:
        """Recognise a greyscale uint8 image and return tesseract's TSV rows (no header).

        ``retry_inverted=False``: no second reading of low-confidence lines as a negative
        (:data:`NO_INVERTED_RETRY`); the default is tesseract's own behaviour.
        """
        if self._handle is None:
            raise OcrError("the tesseract engine was closed")
        img = np.ascontiguousarray(image, dtype=np.uint8)
        if img.ndim != 2:
            raise OcrError(f"expected a greyscale image, got shape {img.shape}")
        lib = self._lib
        with self._lock:
            monitor = lib.TessMonitorCreate()
            try:
                lib.TessMonitorSetDeadlineMSecs(monitor, max(1, int(timeout * 1000)))
                lib.TessBaseAPISetPageSegMode(self._handle, psm)
                self._set_inverted_retry(retry_inverted)
                lib.TessBaseAPISetImage(
                    self._handle, img.ctypes.data, img.shape[1], img.shape[0], 1, img.strides[0]
                )
                lib.TessBaseAPISetSourceResolution(self._handle, SOURCE_DPI)
                t0 = time.monotonic()
                status = lib.TessBaseAPIRecognize(self._handle, monitor)
                elapsed = time.monotonic() - t0
                if status != 0:
                    if elapsed >= 0.9 * timeout:
                        raise OcrTimeoutError(f"tesseract took longer than {timeout:g} s")
                    raise OcrError(f"tesseract failed to recognise the image (status {status})")
                text = lib.TessBaseAPIGetTsvText(self._handle, 0)
                if not text:
                    return ""
                try:
                    return ctypes.string_at(text).decode("utf-8", "replace")
                finally:
                    lib.TessDeleteText(text)
            finally:
                lib.TessMonitorDelete(monitor)
                lib.TessBaseAPIClear(self._handle)

    def _set_inverted_retry(self, on: bool) -> None:
        """Tesseract's own settings (``on``) or :data:`NO_INVERTED_RETRY`, for the next call.

        Set only when the state changes: a call as tesseract would run costs nothing extra.
        """
        if on == self._inverted_retry:
            return
        self._inverted_retry = on
        for name, off in NO_INVERTED_RETRY.items():
            value = self._defaults.get(name) if on else off
            if value is not None:
                self._lib.TessBaseAPISetVariable(self._handle, name.encode(), value.encode())

    def close(self) -> None:
        """Free the model."""
        with self._lock:
            if self._handle is not None:
                self._lib.TessBaseAPIEnd(self._handle)
                self._lib.TessBaseAPIDelete(self._handle)
                self._handle = None


_engines: dict[tuple[int, str], Engine] = {}
_engines_lock = threading.Lock()


def engine(lang: str) -> Engine:
    """This process's engine for ``lang`` (created on first use; a forked child makes its own).

    Raises:
        MissingDependencyError: libtesseract or the language data is missing.
    """
    key = (os.getpid(), lang)
    with _engines_lock:
        found = _engines.get(key)
        if found is None:
            lib = load_library()
            if lib is None:
                raise MissingDependencyError("libtesseract is not installed (tesseract-ocr)")
            found = _engines[key] = Engine(lib, lang)
        return found


@atexit.register
def _close_all() -> None:
    with _engines_lock:
        for (pid, _lang), eng in list(_engines.items()):
            if pid == os.getpid():
                eng.close()
        _engines.clear()
