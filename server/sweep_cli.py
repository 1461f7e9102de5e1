"""``observatory sweep``'s axis syntax: ``path=v1,v2,...`` or, for random search, a range
``path=low..high`` with ``:log`` and/or ``:int`` after it."""

from __future__ import annotations

import json
from typing import Any

import typer


def _value(text: str) -> Any:
    """A JSON value (``0.1``, ``3``, ``true``, ``null``), else the text as a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_axis(text: str) -> tuple[str, list | dict]:
    """``optimizer.lr=0.02,0.05`` → ``("optimizer.lr", [0.02, 0.05])``;
    ``optimizer.lr=1e-4..1e-1:log`` → ``("optimizer.lr", {"low": 1e-4, "high": 0.1, "log": True})``.
    """
    path, sep, values = text.partition("=")
    if not sep or not path or not values:
        raise typer.BadParameter(f"{text!r}: expected path=v1,v2,... or path=low..high")
    if ".." in values:
        bounds, *flags = values.split(":")
        low, _, high = bounds.partition("..")
        unknown = set(flags) - {"log", "int"}
        if unknown:
            raise typer.BadParameter(f"{text!r}: unknown flag {sorted(unknown)[0]!r} (log, int)")
        try:
            spec = {"low": float(low), "high": float(high)}
        except ValueError as error:
            raise typer.BadParameter(f"{text!r}: low and high must be numbers") from error
        return path, spec | {flag: True for flag in flags}
    return path, [_value(v) for v in values.split(",")]


def sweep_body(base: dict, axes: list[str], random: int | None, seed: int) -> dict:
    """The POST /api/sweeps body of the command's arguments (the server validates it)."""
    parsed = dict(parse_axis(a) for a in axes)
    body: dict = {"base": base, "axes": parsed}
    if random is not None:
        body |= {"mode": "random", "count": random, "seed": seed}
    return body
