"""Dependencies shared by every route, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path
from sqlalchemy.orm import Session

from server.config import Settings, get_settings
from server.db import get_sessionmaker
from server.models import Run

SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    with get_sessionmaker(settings.resolved_database_url)() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_run(session: SessionDep, run_id: Annotated[int, Path(ge=1)]) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise HTTPException(status_code=404, detail=f"run {run_id} not found")
    return run


RunDep = Annotated[Run, Depends(get_run)]
