"""The installed tasks, built-in and from plugins, with the JSON schema the form renders."""

from __future__ import annotations

from functools import cache

from fastapi import APIRouter
from pydantic import BaseModel, Field

from server.schemas import BUILTIN_TASKS, PLUGIN_TASKS, TaskBase

router = APIRouter(prefix="/tasks", tags=["tasks"])
BUILTIN = "builtin"


class TaskPublic(BaseModel):
    kind: str = Field(description="the value of task.kind in a RunConfig")
    title: str
    description: str
    source: str = Field(description="'builtin', or the distribution (package) of its plugin")
    json_schema: dict = Field(description="JSON schema of the task object")


class TasksPublic(BaseModel):
    data: list[TaskPublic]
    count: int


def _public(schema: type[TaskBase], source: str) -> TaskPublic:
    kind = schema.model_fields["kind"].default
    json_schema = schema.model_json_schema()
    return TaskPublic(
        kind=kind,
        title=schema.model_config.get("title") or kind.replace("_", " ").capitalize(),
        description=json_schema.get("description", ""),
        source=source,
        json_schema=json_schema,
    )


@cache
def installed_tasks() -> TasksPublic:
    """Fixed for the process's life: the task union is built once, at start."""
    tasks = [_public(schema, BUILTIN) for schema in BUILTIN_TASKS]
    tasks += [_public(plugin.schema, plugin.source) for plugin in PLUGIN_TASKS.values()]
    return TasksPublic(data=tasks, count=len(tasks))


@router.get("", response_model=TasksPublic)
def list_tasks() -> TasksPublic:
    """Built-in tasks first, then each installed plugin's (``observatory.tasks`` entry points)."""
    return installed_tasks()
