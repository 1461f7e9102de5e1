"""Task plugins: tasks a lab registers from its own package, without forking (docs/plugins.md).

A plugin is an entry point of the group ``observatory.tasks`` that names an object (usually a
module) with two attributes:

- ``SCHEMA``: a ``server.task_base.PluginTask`` subclass whose ``kind`` is a one-value Literal.
  The server and the workers import it at start to build the RunConfig task union, so it must
  import neither torch nor the plugin's training code.
- ``BUILDER``: ``"module:function"``, resolved only by the workers (``worker.training.tasks``):
  ``function(task, seed)`` returns a ``worker.training.tasks.Task``.

A plugin that fails to load, or whose ``kind`` is a built-in one or another plugin's, is logged
with the reason and skipped: the server starts without it, never crashes because of it.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Literal, get_args, get_origin

from server.task_base import PluginTask

GROUP = "observatory.tasks"
BUILDER_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskPlugin:
    """One installed plugin task: its schema, its builder (not imported here) and its origin."""

    kind: str
    schema: type[PluginTask]
    builder: str
    source: str
    entry_point: str


class PluginError(Exception):
    """Why an entry point is not a usable task plugin (logged, the plugin skipped)."""


def _kind_of(schema: type[PluginTask]) -> str:
    field = schema.model_fields.get("kind")
    is_literal = field is not None and get_origin(field.annotation) is Literal
    literal = get_args(field.annotation) if is_literal else ()
    if len(literal) != 1 or not isinstance(literal[0], str) or field.default != literal[0]:
        raise PluginError('SCHEMA.kind must be declared as kind: Literal["name"] = "name"')
    if not KIND_PATTERN.match(literal[0]):
        raise PluginError(f"kind {literal[0]!r} must match {KIND_PATTERN.pattern}")
    return literal[0]


def load_entry_point(entry_point: EntryPoint) -> TaskPlugin:
    """Import the entry point's object and check it; ``PluginError`` says what is wrong."""
    try:
        target = entry_point.load()
    except Exception as error:  # a plugin's import may fail in any way; the server must not
        raise PluginError(f"importing {entry_point.value} failed: {error!r}") from error
    schema, builder = getattr(target, "SCHEMA", None), getattr(target, "BUILDER", None)
    if not (inspect.isclass(schema) and issubclass(schema, PluginTask)):
        raise PluginError("SCHEMA must be a subclass of server.task_base.PluginTask")
    if inspect.isabstract(schema):
        missing = ", ".join(sorted(schema.__abstractmethods__))
        raise PluginError(f"SCHEMA does not implement {missing}")
    if not (isinstance(builder, str) and BUILDER_PATTERN.match(builder)):
        raise PluginError('BUILDER must be a string "module:function"')
    source = entry_point.dist.name if entry_point.dist else "unknown distribution"
    return TaskPlugin(_kind_of(schema), schema, builder, source, entry_point.name)


def load_plugins(
    found: Iterable[EntryPoint], builtin_kinds: Iterable[str]
) -> dict[str, TaskPlugin]:
    """The usable plugins of ``found`` by kind; every other one is logged with its reason.

    A kind claimed by two plugins is ambiguous (which one would a stored run mean?): both are
    skipped.  A kind of a built-in task keeps the built-in one.
    """
    loaded: list[TaskPlugin] = []
    for entry_point in sorted(found, key=lambda e: (e.dist.name if e.dist else "", e.name)):
        try:
            loaded.append(load_entry_point(entry_point))
        except PluginError as error:
            log.error("task plugin %r (%s) skipped: %s", entry_point.name, entry_point.value, error)
    claims = Counter(plugin.kind for plugin in loaded)
    builtin = set(builtin_kinds)
    plugins = {}
    for plugin in loaded:
        if plugin.kind in builtin:
            reason = "is a built-in task"
        elif claims[plugin.kind] > 1:
            others = [p.source for p in loaded if p.kind == plugin.kind and p is not plugin]
            reason = f"is also registered by {', '.join(others)}"
        else:
            plugins[plugin.kind] = plugin
            continue
        log.error(
            "task plugin %r of %s skipped: kind %r %s", plugin.entry_point, plugin.source,
            plugin.kind, reason,
        )  # fmt: skip
    return plugins


@cache
def installed_plugins(builtin_kinds: tuple[str, ...]) -> dict[str, TaskPlugin]:
    """The plugins installed in this environment, found once per process."""
    plugins = load_plugins(entry_points(group=GROUP), builtin_kinds)
    if plugins:
        log.info("task plugins: %s", ", ".join(f"{k} ({p.source})" for k, p in plugins.items()))
    return plugins
