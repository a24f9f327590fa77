"""Extract features for every page of a dataset: cached, in parallel worker processes."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from tqdm import tqdm

from app.documents import Page, load_pages
from app.errors import AppError, DatasetError, WorkerCrashedError
from app.features import FEATURE_NAMES, OcrSettings, analyse_page
from app.features.cache import FeatureCache
from app.ocr import image_to_words
from app.processes import worker_pool
from app.training.augment import (
    FILLED_VERSION,
    augment,
    body_band,
    body_between_rules,
    filled_in,
    header_above_rules,
    robustness_variant,
    with_letterhead,
    with_signature,
)
from app.training.dataset import Document

log = logging.getLogger(__name__)

FULLPAGE_NAMES = ("fullpage_conf",)
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class Job:
    """Featurise one document in one variant."""

    path: Path
    sha256: str
    variant: str
    crop_body: bool
    lang: str
    timeout: float
    dpi: int = 200
    other: Path | None = None
    """The second document of a composite variant (``letterhead``/``signed``/``filled``)."""

    @classmethod
    def paired(cls, doc: Document, other: Document, kind: str, *, lang: str, timeout: float) -> Job:
        """A composite of ``doc`` and ``other``: the variant ``<kind>:<other's sha256>``."""
        return cls(
            path=doc.path,
            sha256=doc.sha256,
            variant=f"{kind}:{other.sha256}",
            crop_body=False,
            lang=lang,
            timeout=timeout,
            other=other.path,
        )

    def settings_key(self) -> str:
        """What, besides the file and the variant, changes the features."""
        key = f"{OcrSettings(lang=self.lang).key()}|crop={int(self.crop_body)}|dpi={self.dpi}"
        if self.variant.startswith("filled:"):
            key += f"|filled={FILLED_VERSION}"
        return key


def _transform(page: Page, job: Job) -> Page:
    if job.crop_body:
        page = Page(image=body_between_rules(page.image), number=page.number, dpi=page.dpi)
    if job.variant == "iam_body":
        return Page(image=body_between_rules(page.image), number=page.number, dpi=page.dpi)
    if job.variant == "iam_header":
        header = header_above_rules(page.image)
        if header is None:
            raise DatasetError("no printed header found above the handwritten body")
        return Page(image=header, number=page.number, dpi=page.dpi)
    if job.variant == "robust":
        return robustness_variant(page)
    if job.variant.startswith(("letterhead:", "signed:")) and job.other is not None:
        other = load_pages(job.other, dpi=job.dpi)[0].image
        if job.variant.startswith("letterhead:"):
            return Page(image=with_letterhead(page.image, other), number=page.number, dpi=page.dpi)
        return Page(image=with_signature(page.image, other), number=page.number, dpi=page.dpi)
    if job.variant.startswith("aug"):
        return augment(page, f"{job.sha256}|{job.variant}|{page.number}")
    return page


def _fullpage_conf(page: Page, job: Job) -> dict[str, float]:
    words = image_to_words(page.image, lang=job.lang, timeout=max(job.timeout, 120.0), psm=3)
    conf = float(np.mean([w.conf for w in words])) if words else 0.0
    return {"fullpage_conf": conf}


def run_job(job: Job) -> list[dict[str, Any]]:
    """Load, transform and featurise every page of one document."""
    pages = load_pages(job.path, dpi=job.dpi)
    out: list[dict[str, Any]] = []
    for page in pages:
        entry: dict[str, Any] = {"page": page.number}
        if job.variant == "fullpage":
            feats = _fullpage_conf(page, job)
            shown = page
        elif job.variant.startswith("filled:") and job.other is not None:
            hand = load_pages(job.other, dpi=job.dpi)[0].image
            image, truth = filled_in(page.image, hand, f"{job.sha256}|{job.variant}")
            shown = Page(image=image, number=page.number, dpi=page.dpi)
            entry["truth"] = [list(b) for b in truth]
        else:
            shown = _transform(page, job)
            if (job.variant == "orig" or job.variant.startswith("aug")) and not job.crop_body:
                band = body_band(shown.image)
                entry["body_band"] = list(band) if band else None
        if job.variant != "fullpage":
            analysis = analyse_page(shown.image, OcrSettings(lang=job.lang, timeout=job.timeout))
            feats = analysis.features
            entry["lines"] = [[*info.bbox, *info.features] for info in analysis.line_infos]
        entry.update(
            {
                "width": shown.width,
                "height": shown.height,
                "dpi": shown.dpi or 0.0,
                "features": feats,
            }
        )
        out.append(entry)
    return out


def _names(job: Job) -> tuple[str, ...]:
    return FULLPAGE_NAMES if job.variant == "fullpage" else FEATURE_NAMES


def _safe_run(job: Job) -> tuple[list[dict[str, Any]] | None, str | None]:
    try:
        return run_job(job), None
    except AppError as e:
        return None, e.message


def featurize(
    jobs: list[Job],
    *,
    cache: FeatureCache,
    workers: int = 1,
    progress: ProgressFn | None = None,
) -> tuple[dict[Job, list[dict[str, Any]]], list[tuple[str, str]]]:
    """Run every job (cached ones are free); return results and (path, reason) failures."""
    results: dict[Job, list[dict[str, Any]]] = {}
    failures: list[tuple[str, str]] = []
    todo: list[Job] = []
    for job in jobs:
        hit = cache.get(job.sha256, job.variant, job.settings_key(), _names(job))
        if hit is not None:
            results[job] = hit
        else:
            todo.append(job)
    done = len(results)
    total = len(jobs)
    if progress:
        progress(done, total)

    def _finish(job: Job, res: list[dict[str, Any]] | None, err: str | None) -> None:
        nonlocal done
        done += 1
        if res is None:
            failures.append((str(job.path), err or "failed"))
        else:
            results[job] = res
            cache.put(job.sha256, job.variant, job.settings_key(), res, _names(job))
        if progress:
            progress(done, total)

    if workers <= 1 or len(todo) <= 1:
        for job in todo:
            _finish(job, *_safe_run(job))
    else:
        with worker_pool(workers) as pool:
            futures = {pool.submit(_safe_run, job): job for job in todo}
            try:
                for fut in as_completed(futures):
                    _finish(futures[fut], *fut.result())
            except BrokenProcessPool as e:  # finished pages are cached: a re-run resumes
                raise WorkerCrashedError(
                    f"a feature worker died after {done} of {total} pages (killed, out of memory,"
                    " or a crash in the OCR engine); run again to resume from the cache"
                ) from e
    return results, failures


class ProgressBar:
    """A progress bar on stderr, drawn by tqdm, called as ``bar(done, total)``.

    tqdm redraws in place on a terminal and, on a pipe or in a log, prints a line at most every
    30 s, so long trainings leave a readable trace without flooding the log.
    """

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        """Draw to ``stream`` (stderr by default)."""
        self.label = label
        self.stream = stream or sys.stderr
        self._bar: Any = None  # tqdm is untyped

    def __call__(self, done: int, total: int) -> None:
        """Show ``done`` of ``total``; closes itself when done."""
        tty = self.stream.isatty()
        if self._bar is None or self._bar.total != total or done < self._bar.n:
            if self._bar is not None:
                self._bar.close()
            self._bar = tqdm(
                total=total,
                desc=self.label,
                file=self.stream,
                unit="item",
                dynamic_ncols=tty,
                mininterval=0.2 if tty else 30.0,
                ascii=not tty,
            )
        self._bar.update(done - self._bar.n)
        if done >= total:
            self._bar.close()


def jobs_for(
    docs: Iterable[Document],
    variant: str,
    *,
    lang: str,
    timeout: float,
    crop_iam: bool = False,
) -> list[Job]:
    """One job per document in ``variant``; IAM bodies cropped when ``crop_iam``."""
    return [
        Job(
            path=d.path,
            sha256=d.sha256,
            variant=variant,
            crop_body=crop_iam and d.source.startswith("iam"),
            lang=lang,
            timeout=timeout,
        )
        for d in docs
    ]
