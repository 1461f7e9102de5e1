"""Events of a run (``eos.crossed``, ``grokking.generalized``, ``loss.spike`` ...)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from server.api.deps import ID_MAX, RunDep, SessionDep
from server.schemas import PRINTABLE, EventPublic, EventsPublic
from server.store.results import list_events

router = APIRouter(prefix="/runs/{run_id}", tags=["events"])


@router.get("/events", response_model=EventsPublic)
def read_events(
    run: RunDep,
    session: SessionDep,
    kind: Annotated[str | None, Query(max_length=64, pattern=PRINTABLE)] = None,
    after_id: Annotated[int, Query(ge=0, le=ID_MAX)] = 0,
) -> EventsPublic:
    events = list_events(session, run_id=run.id, after_id=after_id, kind=kind)
    return EventsPublic(data=[EventPublic.model_validate(e) for e in events], count=len(events))
