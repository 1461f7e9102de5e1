"""Health: database and broker reachable, workers seen."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from server.api.deps import SessionDep, SettingsDep
from server.broker import broker_reachable, workers_seen
from server.schemas import HealthPublic

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthPublic)
def health(session: SessionDep, settings: SettingsDep) -> HealthPublic:
    try:
        database = session.execute(text("SELECT 1")).scalar() == 1
    except Exception:  # reported, not raised: health must answer when the database does not
        database = False
    broker = broker_reachable(settings)
    workers = workers_seen(settings) if broker else []
    return HealthPublic(
        status="ok" if database and broker else "degraded",
        database=database,
        broker=broker,
        workers=workers,
        embedded=settings.embedded_broker,
    )
