"""One router per resource, gathered here."""

from fastapi import APIRouter

from app.api.routes import classify, corrections, health, jobs, models, train, ui

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(classify.router)
api_router.include_router(jobs.router)
api_router.include_router(corrections.router)
api_router.include_router(train.router)
api_router.include_router(models.router)
api_router.include_router(ui.router)
