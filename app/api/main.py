"""create_app(): the FastAPI application with its lifespan."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import __version__
from app.api.routes import api_router
from app.config import Settings, get_settings
from app.errors import AppError, ServiceBusyError
from app.jobs.classify.manager import ClassifyJobs
from app.jobs.training import TrainingJobs
from app.models.registry import Registry
from app.ocr import check_tesseract, engine_description
from app.runtime.state import ServiceState
from app.runtime.workers import make_executor

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the service; the model is loaded once, in the lifespan."""
    cfg = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not logging.getLogger().handlers:
            logging.basicConfig(level=cfg.log_level.upper())
        state = ServiceState(
            settings=cfg,
            registry=Registry(cfg.models_dir, cfg.default_model_dir),
            executor=make_executor(cfg.workers, cfg.ocr_lang) if cfg.workers > 1 else None,
        )
        try:
            state.tesseract = check_tesseract(cfg.ocr_lang)
            state.ocr_engine = engine_description()
            log.info("OCR: tesseract %s", state.ocr_engine)
        except AppError as e:
            state.tesseract_error = e.message
            log.error("tesseract check failed: %s", e.message)
        try:
            state.load_active()
            log.info("serving model %s", state.active_id)
        except AppError as e:
            log.error("cannot load the active model: %s", e.message)
        removed = state.registry.remove_stale_staging()
        if removed:
            log.warning("removed %d half-written model version(s) of dead trainings", removed)
        app.state.inkwell = state
        app.state.jobs = jobs = TrainingJobs(state)
        app.state.classify_jobs = classify_jobs = ClassifyJobs(state)
        classify_jobs.start()
        try:
            yield
        finally:
            classify_jobs.close()
            jobs.shutdown()
            if state.executor is not None:
                state.executor.shutdown(wait=True, cancel_futures=True)

    app = FastAPI(
        title="inkwell",
        version=__version__,
        description="Tells, for every page of a scan, whether it is handwritten or typed.",
        lifespan=lifespan,
    )

    @app.exception_handler(AppError)
    async def app_error(_: Request, exc: AppError) -> JSONResponse:
        headers = (
            {"Retry-After": str(exc.retry_after)} if isinstance(exc, ServiceBusyError) else None
        )
        return JSONResponse(
            status_code=int(exc.http_status),
            content={"detail": exc.message, "code": exc.code},
            headers=headers,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Errors raised by Starlette itself (a malformed multipart body, say): same body.

        A 405 lists every method of the path (Starlette names only the first route's, and
        ``GET``/``DELETE /jobs/{id}`` are two routes).
        """
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}
        headers = dict(exc.headers or {})
        if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
            path = request.url.path
            methods = {
                m.upper()
                for template, ops in app.openapi().get("paths", {}).items()
                if re.fullmatch(re.sub(r"\{[^/}]+\}", "[^/]+", template), path)
                for m in ops
            }
            if methods:
                headers["Allow"] = ", ".join(sorted(methods))
        return JSONResponse(
            status_code=exc.status_code,
            content={"detail": str(exc.detail), "code": code.get(exc.status_code, "http_error")},
            headers=headers or None,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in errors]
        return JSONResponse(
            status_code=422, content={"detail": "; ".join(parts), "code": "invalid_request"}
        )

    app.include_router(api_router)
    return app
