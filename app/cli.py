"""The command line: ``python -m app <command>`` (``--help`` lists them)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app import __version__
from app.config import Settings, get_settings
from app.errors import AppError, DatasetError, ExitCode, WorkerCrashedError
from app.processes import worker_pool

if TYPE_CHECKING:
    from app.training.fold import FitOptions

log = logging.getLogger("app")

DOC_SUFFIXES = {".pdf", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}


def setup_logging(level: str) -> None:
    """Configure logging once for the process."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _expand(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files += sorted(
                f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in DOC_SUFFIXES
            )
        else:
            files.append(p)
    return files


def _load_model(settings: Settings, model: str | None) -> Any:
    from app.models.registry import Registry, load_version

    if model and Path(model).is_dir():
        return load_version(Path(model))
    registry = Registry(settings.models_dir, settings.default_model_dir)
    return registry.load(model or registry.active_id())


# ---------------------------------------------------------------------------- classify
def cmd_classify(args: argparse.Namespace, settings: Settings) -> int:
    """Classify files and folders; one row per page.

    No worker pool for a document or two of a page or two (starting one costs more than it
    saves); pages stream through a pool otherwise. A bar on stderr (a terminal only) shows the
    pages of a long batch.
    """
    from tqdm import tqdm

    from app.documents import open_document
    from app.features import OcrSettings
    from app.models.predict import classify_pages

    version = _load_model(settings, args.model)
    files = _expand(args.paths)
    if not files:
        raise AppError("no document found in the given paths")
    ocr = OcrSettings(lang=args.lang or settings.ocr_lang, timeout=settings.ocr_timeout)
    rows: list[dict[str, Any]] = []
    errors = 0
    jobs = args.jobs or settings.workers
    pool: ProcessPoolExecutor | None = None
    bar = tqdm(total=0, desc="pages", unit="page", disable=None, leave=False)
    try:
        for f in files:
            try:
                doc = open_document(f, **settings.render_limits())
                bar.total += doc.page_count
                bar.refresh()
                if pool is None and jobs > 1 and (len(files) > 2 or doc.page_count > 2):
                    pool = worker_pool(jobs)
                kept: list[Any] = []

                def seen(page: Any, keep: list[Any] = kept) -> None:
                    bar.update(1)
                    if args.overlay:
                        keep.append(page)

                verdicts = classify_pages(
                    doc.pages(),
                    version,
                    algorithm=args.algorithm,
                    ocr=ocr,
                    executor=pool,
                    window=2 * jobs,
                    on_page=seen,
                )
            except AppError as e:
                errors += 1
                log.error("%s: %s", f, e.message)
                if isinstance(e, WorkerCrashedError) and pool is not None:  # broken: a new one
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = worker_pool(jobs)
                rows.append(
                    {
                        "path": str(f),
                        "page": None,
                        "label": "error",
                        "p_handwritten": None,
                        "error": e.message,
                    }
                )
                continue
            if args.overlay:
                write_overlays(Path(args.overlay), f, kept, verdicts)
            rows += [_row(f, v, with_lines=args.lines) for v in verdicts]
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    _print_rows(rows, args.format)
    return int(ExitCode.BAD_INPUT) if errors else 0


def _row(path: Path, v: Any, *, with_lines: bool) -> dict[str, Any]:
    share = v.handwritten_share
    row: dict[str, Any] = {
        "path": str(path),
        "page": v.page,
        "label": v.label,
        "p_handwritten": round(v.p_handwritten, 4),
        "handwritten_share": None if share is None else round(share, 4),
        "orientation": v.orientation,
        "skew": round(v.skew, 2),
    }
    if with_lines:
        row["lines"] = [
            {"bbox": list(ln.bbox), "label": ln.label, "p_handwritten": round(ln.p_handwritten, 4)}
            for ln in v.lines
        ]
    return row


OVERLAY_COLOURS = {"handwritten": (220, 30, 30), "typed": (30, 90, 220)}


def write_overlays(
    folder: Path, source: Path, pages: Sequence[Any], verdicts: Sequence[Any]
) -> None:
    """PNG of each page with handwritten lines boxed in red and typed lines in blue."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    for page, verdict in zip(pages, verdicts, strict=True):
        img = Image.fromarray(page.image).convert("RGB")
        draw = ImageDraw.Draw(img)
        width = max(2, page.width // 600)
        for ln in verdict.lines:
            draw.rectangle(ln.bbox, outline=OVERLAY_COLOURS[ln.label], width=width)
        share = verdict.handwritten_share
        note = "" if share is None else f" share {share:.2f}"
        draw.text(
            (10, 10), f"{verdict.label} p={verdict.p_handwritten:.2f}{note}", fill=(0, 160, 0)
        )
        target = folder / f"{source.stem}-p{page.number}.png"
        tmp = target.with_name(f".{target.name}.tmp")
        img.save(tmp, format="PNG")
        tmp.replace(target)


def _print_rows(rows: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        _out(json.dumps(rows, indent=2))
        return
    if fmt == "csv":
        buf = io.StringIO()
        fields = [
            "path",
            "page",
            "label",
            "p_handwritten",
            "handwritten_share",
            "orientation",
            "skew",
            "bbox",
        ]
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow(r)
            for ln in r.get("lines", []):
                writer.writerow(
                    {
                        "path": r["path"],
                        "page": r["page"],
                        "label": f"line:{ln['label']}",
                        "p_handwritten": ln["p_handwritten"],
                        "bbox": " ".join(map(str, ln["bbox"])),
                    }
                )
        _out(buf.getvalue())
        return
    width = max([len(r["path"]) for r in rows] + [4])
    lines = [f"{'path':<{width}}  page  {'label':<11}  p(handwritten)"]
    for r in rows:
        p = "" if r["p_handwritten"] is None else f"{r['p_handwritten']:.3f}"
        page = "" if r["page"] is None else str(r["page"])
        extra = f"  {r['error']}" if "error" in r else ""
        if r.get("handwritten_share") is not None:
            extra += f"  (handwritten share {r['handwritten_share']:.2f})"
        if r.get("orientation"):
            extra += f"  (read turned {r['orientation']}°)"
        lines.append(f"{r['path']:<{width}}  {page:>4}  {r['label']:<11}  {p}{extra}")
        for ln in r.get("lines", []):
            box = ",".join(map(str, ln["bbox"]))
            lines.append(
                f"{'':<{width}}        line {ln['label']:<11} {ln['p_handwritten']:.3f}  {box}"
            )
    _out("\n".join(lines))


# ------------------------------------------------------------------------------- train
def _machine(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """What every training takes from the command line and the settings."""
    return {
        "lang": args.lang or settings.ocr_lang,
        "ocr_timeout": settings.ocr_timeout,
        "workers": args.jobs or settings.workers,
        "threads": args.jobs or settings.workers,
    }


def _sinks(args: argparse.Namespace, settings: Settings, progress: Any) -> dict[str, Any]:
    """Where every training writes: the version id, the feature cache, a progress bar."""
    return {
        "cache_dir": None if args.no_cache else settings.cache_dir,
        "version_id": args.version,
        "progress": progress,
    }


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    """Train CatBoost and SVM, evaluate, write a version folder."""
    from app.models.registry import Registry
    from app.training.featurize import ProgressBar
    from app.training.report import results_table
    from app.training.train import TrainConfig, train

    if args.base:
        return _train_extended(args, settings)
    if args.exclude_source or args.allow_base_drop or args.user_weight is not None:
        raise AppError("--exclude-source, --user-weight and --allow-base-drop need --base")
    cfg = TrainConfig(
        loso=args.loso,
        composites=args.composites,
        loso_progress=ProgressBar("leave-one-source-out folds") if args.loso else None,
        algorithms=tuple(a.strip() for a in args.algorithms.split(",") if a.strip()),
        seed=args.seed,
        test_size=args.test_size,
        augment=not args.no_augment,
        iam_header=args.iam_header,
        fullpage_baseline=not args.no_fullpage_baseline,
        **_machine(args, settings),
    )
    out = Path(args.out) if args.out else settings.models_dir
    result = train(
        Path(args.data),
        out_dir=out,
        cfg=cfg,
        **_sinks(args, settings, ProgressBar("features")),
    )
    _out(f"model version {result.version_id} written to {result.path}")
    _out(results_table(result.report))
    if result.report.get("loso"):
        from app.training.loso import loso_table

        _out(loso_table(result.report["loso"]))
    if args.activate:
        Registry(out, settings.default_model_dir).activate(result.version_id)
        _out(f"activated {result.version_id}")
    return 0


def _train_extended(args: argparse.Namespace, settings: Settings) -> int:
    """Train on a version's base features plus ``--data``; activate only past the guard."""
    from app.models.registry import Registry
    from app.training.extend import USER_WEIGHT, ExtendConfig, train_extended
    from app.training.featurize import ProgressBar

    out = Path(args.out) if args.out else settings.models_dir
    registry = Registry(out, settings.default_model_dir)
    base = Path(args.base)
    base_dir = base if base.is_dir() else registry.folder(args.base)
    cfg = ExtendConfig(
        algorithms=tuple(a.strip() for a in args.algorithms.split(",") if a.strip()),
        seed=args.seed,
        user_weight=args.user_weight if args.user_weight is not None else USER_WEIGHT,
        exclude_sources=tuple(args.exclude_source or ()),
        augment=not args.no_augment,
        loso_progress=ProgressBar("leave-one-source-out folds on the base"),
        **_machine(args, settings),
    )
    result = train_extended(
        Path(args.data),
        base_dir=base_dir,
        out_dir=out,
        cfg=cfg,
        **_sinks(args, settings, ProgressBar("features")),
    )
    _out(f"model version {result.version_id} written to {result.path}")
    _out((result.path / "report.md").read_text(encoding="utf-8"))
    if args.activate:
        guard = result.report["guard"]
        if not guard["passed"] and not args.allow_base_drop:
            raise DatasetError(
                f"{result.version_id} not activated: {guard['reason']} "
                "(--allow-base-drop activates it anyway)"
            )
        registry.activate(result.version_id)
        _out(f"activated {result.version_id}")
    return 0


# ---------------------------------------------------------------------------- evaluate
def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    """Evaluate a version on any labelled folder or manifest."""
    from app.training.evaluate import evaluate, summary_table
    from app.training.featurize import ProgressBar

    if args.loso:
        return _evaluate_loso(args, settings)
    if args.where:
        return _evaluate_where(args, settings)
    version = _load_model(settings, args.model)
    summary = evaluate(
        Path(args.data),
        version,
        split=args.split,
        out=Path(args.out) if args.out else None,
        cache_dir=settings.cache_dir,
        workers=args.jobs or settings.workers,
        lang=args.lang or settings.ocr_lang,
        progress=ProgressBar("features"),
    )
    _out(json.dumps(summary, indent=2) if args.json else summary_table(summary))
    return 0


def _evaluate_loso(args: argparse.Namespace, settings: Settings) -> int:
    from app.training.evaluate import loso_evaluate
    from app.training.featurize import ProgressBar
    from app.training.loso import loso_table

    if args.model or args.split != "all":
        raise AppError("--loso evaluates the training procedure: it takes no --model or --split")
    jobs = args.jobs or settings.workers
    if args.ablate:
        return _evaluate_ablation(args, settings, jobs)
    summary = loso_evaluate(
        Path(args.data),
        opts=_loso_options(args),
        cache_dir=settings.cache_dir,
        workers=jobs,
        lang=args.lang or settings.ocr_lang,
        fullpage=args.fullpage_baseline,
        sources=[s.strip() for s in args.sources.split(",") if s.strip()] if args.sources else None,
        out=Path(args.out) if args.out else None,
        progress=ProgressBar("features"),
        fold_progress=ProgressBar("leave-one-source-out folds"),
    )
    if args.json:
        _out(json.dumps({k: v for k, v in summary.items() if k != "pages"}, indent=2))
    else:
        _out(loso_table(summary))
    return 0


def _loso_options(args: argparse.Namespace) -> FitOptions:
    """The fold fits ``evaluate --loso`` asks for (seed, label check, composites)."""
    from app.training.fold import FitOptions

    return FitOptions(
        threads=1,
        composites=args.composites,
        seed=args.seed,
        clean_lines=not args.no_clean_lines,
    )


def _evaluate_ablation(args: argparse.Namespace, settings: Settings, jobs: int) -> int:
    from app.training.evaluate import loso_ablation
    from app.training.featurize import ProgressBar

    table = loso_ablation(
        Path(args.data),
        word=args.ablate,
        opts=_loso_options(args),
        cache_dir=settings.cache_dir,
        workers=jobs,
        lang=args.lang or settings.ocr_lang,
        sources=[s.strip() for s in args.sources.split(",") if s.strip()] if args.sources else None,
        out=Path(args.out) if args.out else None,
        progress=ProgressBar("features"),
        fold_progress=ProgressBar("leave-one-source-out folds"),
    )
    _out(table)
    return 0


def _evaluate_where(args: argparse.Namespace, settings: Settings) -> int:
    from app.training.evaluate import where_evaluate
    from app.training.featurize import ProgressBar
    from app.training.where import where_table

    if args.model or args.loso:
        raise AppError("--where evaluates the training procedure: it takes no --model or --loso")
    if args.where < 1:
        raise AppError("--where needs at least one pair")
    result = where_evaluate(
        Path(args.data),
        pairs=args.where,
        cache_dir=settings.cache_dir,
        workers=args.jobs or settings.workers,
        lang=args.lang or settings.ocr_lang,
        out=Path(args.out) if args.out else None,
        progress=ProgressBar("features"),
    )
    _out(json.dumps(result, indent=2) if args.json else where_table(result))
    return 0


# ---------------------------------------------------------------------------- features
def cmd_base_features(args: argparse.Namespace, settings: Settings) -> int:
    """Write a trained version's base features from the dataset it was trained on."""
    import json

    from app.features.cache import FeatureCache
    from app.training.basepack import PACK_FILE, loso_pages_from_csv, write_pack
    from app.training.corpus import corpus_jobs
    from app.training.dataset import discover
    from app.training.featurize import ProgressBar, featurize

    folder = Path(args.model)
    meta = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
    dataset = discover(Path(args.data))
    if meta.get("training_manifest_sha256") != dataset.manifest_hash():
        raise DatasetError(f"{folder} was not trained on {args.data} (its manifest hash differs)")
    lang = meta.get("ocr_lang", settings.ocr_lang)
    jobs = corpus_jobs(dataset.documents, lang=lang, timeout=settings.ocr_timeout, robust=False)
    results, failures = featurize(
        [j for js in jobs.values() for j in js],
        cache=FeatureCache(settings.cache_dir),
        workers=args.jobs or settings.workers,
        progress=ProgressBar("features"),
    )
    for path, reason in failures:
        _out(f"skipped {path}: {reason}")
    loso_csv = folder / "loso_pages.csv"
    size = write_pack(
        folder / PACK_FILE,
        dataset.documents,
        jobs,
        results,
        lang=lang,
        version=str(meta.get("id", folder.name)),
        loso=loso_pages_from_csv(loso_csv) if loso_csv.is_file() else None,
        loso_algorithm=meta.get("default_algorithm"),
    )
    _out(f"{folder / PACK_FILE}: {len(dataset.documents)} documents, {size / 1e6:.1f} MB")
    return 0


def cmd_features(args: argparse.Namespace, settings: Settings) -> int:
    """Extract features of a dataset to CSV."""
    from app.features import FEATURE_NAMES
    from app.features.cache import FeatureCache
    from app.training.dataset import discover
    from app.training.featurize import ProgressBar, featurize, jobs_for

    dataset = discover(Path(args.data))
    jobs = jobs_for(
        dataset.documents, "orig", lang=args.lang or settings.ocr_lang, timeout=settings.ocr_timeout
    )
    results, failures = featurize(
        jobs,
        cache=FeatureCache(settings.cache_dir),
        workers=args.jobs or settings.workers,
        progress=ProgressBar("features"),
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "page", "label", "source", "group", *FEATURE_NAMES])
        for doc, job in zip(dataset.documents, jobs, strict=True):
            for page in results.get(job, []):
                writer.writerow(
                    [
                        str(doc.path),
                        page["page"],
                        doc.label,
                        doc.source,
                        doc.group,
                        *(f"{page['features'][n]:.6g}" for n in FEATURE_NAMES),
                    ]
                )
    tmp.replace(out)
    for path, reason in dataset.skipped + failures:
        log.warning("skipped %s: %s", path, reason)
    _out(f"{sum(len(r) for r in results.values())} pages written to {out}")
    return 0


# ------------------------------------------------------------------------------ report
README_START = (
    "<!-- results:start (generated by: python -m app report models/default --readme README.md) -->"
)
README_END = "<!-- results:end -->"


def cmd_report(args: argparse.Namespace, _settings: Settings) -> int:
    """Print a version's results table, or write it into the README between the markers."""
    from app.training.report import markdown_report, results_table

    report_path = Path(args.model) / "report.json"
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise AppError(f"cannot read {report_path}: {e}") from e
    if not args.readme:
        _out(markdown_report(report) if args.full else results_table(report))
        return 0
    readme = Path(args.readme)
    text = readme.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        raise AppError(f"{readme} has no results markers ({README_START} ... {README_END})")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    block = markdown_report(report).split("\n", 2)[2].strip()
    readme.write_text(f"{head}{README_START}\n{block}\n{README_END}{tail}", encoding="utf-8")
    _out(f"results of {report['version']} written into {readme}")
    return 0


# ------------------------------------------------------------------------------- serve
def cmd_serve(
    args: argparse.Namespace, settings: Settings
) -> int:  # pragma: no cover - runs uvicorn
    """Run the HTTP service."""
    import uvicorn

    uvicorn.run(
        "app.api.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        log_level=settings.log_level.lower(),
    )
    return 0


# ------------------------------------------------------------------------------ worker
def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Take /jobs tasks from the Redis queue (``INKWELL_JOB_ENGINE=rq``) until stopped."""
    from redis.exceptions import RedisError

    from app.errors import QueueUnavailableError
    from app.jobs.classify.tasks import run_worker

    try:
        run_worker(burst=args.burst, name=args.name, wait=args.wait)
    except RedisError as e:
        raise QueueUnavailableError(
            f"the job queue at {settings.redis_url} cannot be reached: {e}"
        ) from e
    return 0


# ------------------------------------------------------------------------------ corrections
CORRECTION_LABELS = ("handwritten", "typed", "mixed")


def _correction_rows(csv_path: Path) -> list[tuple[Path, int, str]]:
    """``path,label[,page]`` rows of a corrections CSV, every one checked before any is kept."""
    from app.errors import InputError
    from app.training.dataset import read_table

    rows = read_table(csv_path, InputError)
    out: list[tuple[Path, int, str]] = []
    problems: list[str] = []
    for n, row in enumerate(rows, 2):
        file = csv_path.parent / (row.get("path") or "").strip()
        label = (row.get("label") or "").strip().lower()
        page_text = (row.get("page") or "1").strip() or "1"
        if not file.is_file():
            problems.append(f"line {n}: no file {file}")
        elif label not in CORRECTION_LABELS:
            problems.append(f"line {n}: label must be one of {', '.join(CORRECTION_LABELS)}")
        elif not page_text.isdigit() or int(page_text) < 1:
            problems.append(f"line {n}: page must be a number from 1")
        else:
            out.append((file, int(page_text), label))
    if problems:
        raise InputError(f"{csv_path}: nothing kept; " + "; ".join(problems))
    return out


def cmd_corrections(args: argparse.Namespace, settings: Settings) -> int:
    """Add corrections from a CSV, list them, or remove some (the service's store by default)."""
    import hashlib

    from app.config import corrections_dir
    from app.corrections import CorrectionStore, read_page

    store = CorrectionStore(Path(args.dir) if args.dir else corrections_dir(settings))
    if args.action == "add":
        rows = _correction_rows(Path(args.csv))
        for file, page, label in rows:
            rendered = read_page(
                file,
                page,
                filename=file.name,
                **settings.render_limits(max(settings.max_pages, settings.job_max_pages)),
            )
            sha = hashlib.sha256(file.read_bytes()).hexdigest()
            c = store.add(rendered, sha256=sha, filename=file.name, label=label)  # type: ignore[arg-type]  # checked against CORRECTION_LABELS above
            _out(f"{c.id}  {c.label:<11}  {file} p{page}")
        _out(f"{len(rows)} correction(s) kept in {store.root}")
    elif args.action == "list":
        items = store.all()
        for c in items:
            _out(f"{c.id}  {c.label:<11}  {c.filename or '-'} p{c.page}  {c.created_at}")
        _out(f"{len(items)} correction(s) in {store.root}")
    else:
        for cid in args.ids:
            store.remove(cid)
            _out(f"removed {cid}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(
        prog="python -m app", description="inkwell: handwritten or typed, page by page."
    )
    parser.add_argument("--version", action="version", version=f"inkwell {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("classify", help="classify PDFs and images (folders recursively)")
    p.add_argument("paths", nargs="+")
    p.add_argument(
        "--model", help="version id, 'default', or a version folder (default: the active model)"
    )
    p.add_argument(
        "--algorithm", choices=["catboost", "svm"], help="default: the model's own choice"
    )
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--lang", help="tesseract language(s), e.g. eng or eng+fra")
    p.add_argument("--jobs", type=int, help="worker processes (default: all cores)")
    p.add_argument("--lines", action="store_true", help="also print every text line's verdict")
    p.add_argument("--overlay", metavar="DIR", help="write PNGs with line boxes into DIR")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("train", help="train CatBoost and SVM on a labelled folder or manifest.csv")
    p.add_argument("--data", required=True)
    p.add_argument("--algorithms", default="catboost,svm")
    p.add_argument("--out", help="models directory (default: INKWELL_MODELS_DIR)")
    p.add_argument("--version", dest="version", help="version id (default: a timestamp)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--test-size", type=float, default=0.25)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument(
        "--iam-header",
        choices=["split", "keep"],
        default="split",
        help="IAM forms: whole pages plus header (typed) and body (handwritten) parts [split], "
        "or whole pages only [keep]",
    )
    p.add_argument(
        "--loso",
        action="store_true",
        help="also run the leave-one-source-out evaluation (one fit per source) into the report",
    )
    p.add_argument(
        "--composites",
        action="store_true",
        help="also learn from letterhead/signature composite pages (see the README)",
    )
    p.add_argument(
        "--no-fullpage-baseline", action="store_true", help="skip the slow full-page OCR reference"
    )
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--activate", action="store_true", help="make the new version the active one")
    p.add_argument(
        "--base",
        metavar="VERSION",
        help="train on this version's base features (its training pages, as numbers) plus "
        "--data's pages, which weigh as --user-weight base sources; the base's "
        "leave-one-source-out figures are measured again and guard --activate",
    )
    p.add_argument("--user-weight", type=float, help="with --base: default 5")
    p.add_argument(
        "--exclude-source",
        action="append",
        metavar="SOURCE",
        help="with --base: leave this base source out (repeatable)",
    )
    p.add_argument(
        "--allow-base-drop",
        action="store_true",
        help="with --base --activate: activate even when the base figures fell by over a point",
    )
    p.add_argument("--lang")
    p.add_argument("--jobs", type=int)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a model on any labelled folder or manifest.csv")
    p.add_argument("--data", required=True)
    p.add_argument("--model", help="version id or folder (default: the active model)")
    p.add_argument(
        "--split",
        choices=["all", "test"],
        default="all",
        help="'test': only the documents the model's own split held out",
    )
    p.add_argument(
        "--loso",
        action="store_true",
        help="leave-one-source-out: train on all sources but one, score it, for every source "
        "(no --model: the training procedure itself is evaluated)",
    )
    p.add_argument(
        "--sources", help="with --loso: comma-separated sources to leave out (default: all)"
    )
    p.add_argument(
        "--fullpage-baseline",
        action="store_true",
        help="with --loso: add the full-page tesseract reference (slow on a cold cache)",
    )
    p.add_argument(
        "--composites",
        action="store_true",
        help="with --loso: also learn from letterhead/signature composite pages",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=42,
        help="with --loso: the fits' random seed (train's default, 42); run two seeds to see "
        "the noise a difference must beat",
    )
    p.add_argument(
        "--no-clean-lines",
        action="store_true",
        help="with --loso: let the line model learn from every page-labelled fragment (no "
        "label check, see the README)",
    )
    p.add_argument(
        "--ablate",
        metavar="WORD",
        help="with --loso: run it twice, with and without the features named with WORD "
        "(e.g. glyph), and print the per-source table of both",
    )
    p.add_argument(
        "--where",
        type=int,
        metavar="PAIRS",
        help="line boxes against truth on generated filled-in pages: PAIRS pairs of (typed "
        "source, handwritten source), each scored by a line model trained without both",
    )
    p.add_argument("--out", help="folder for report.json / report.md (loso.json, loso.md)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--lang")
    p.add_argument("--jobs", type=int)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "base-features",
        help="write a version's base features (to retrain on) from the dataset it was trained on",
    )
    p.add_argument("--data", required=True, help="the manifest.csv or folder it was trained on")
    p.add_argument("--model", required=True, help="the version's folder")
    p.add_argument("--jobs", type=int)
    p.set_defaults(func=cmd_base_features)

    p = sub.add_parser("features", help="extract features of a dataset to CSV")
    p.add_argument("data")
    p.add_argument("--out", required=True)
    p.add_argument("--lang")
    p.add_argument("--jobs", type=int)
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("report", help="print a version's results, or write them into the README")
    p.add_argument("model", help="a version folder, e.g. models/default")
    p.add_argument("--readme", help="README to update between the results markers")
    p.add_argument("--full", action="store_true", help="the whole report.md, not just the table")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("corrections", help="pages with their right label, kept to train on")
    p.add_argument("--dir", help="corrections folder (default: INKWELL_CORRECTIONS_DIR)")
    csub = p.add_subparsers(dest="action", required=True)
    c = csub.add_parser("add", help="add the pages a CSV names (path,label[,page])")
    c.add_argument("csv", help="paths relative to the CSV; label handwritten, typed or mixed")
    csub.add_parser("list", help="every correction")
    c = csub.add_parser("remove", help="forget corrections by id (their images are deleted)")
    c.add_argument("ids", nargs="+")
    p.set_defaults(func=cmd_corrections)

    p = sub.add_parser("serve", help="run the HTTP service (uvicorn)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "worker", help="read /jobs pages from the Redis queue (INKWELL_JOB_ENGINE=rq)"
    )
    p.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    p.add_argument("--name", default=None, help="worker name (default: host and pid)")
    p.add_argument(
        "--wait", type=float, default=60.0, help="seconds to wait for Redis at start-up (60)"
    )
    p.set_defaults(func=cmd_worker)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = get_settings()
    setup_logging("DEBUG" if args.verbose else settings.log_level)
    try:
        return int(args.func(args, settings))
    except AppError as e:
        log.error("%s", e.message)
        sys.stderr.write(f"error: {e.message}\n")
        return int(e.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return int(ExitCode.INTERRUPTED)
