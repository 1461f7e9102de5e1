"""``observatory sweep``'s axis syntax."""

from __future__ import annotations

import pytest
import typer

from server.sweep_cli import parse_axis, sweep_body


def test_axes_are_json_values_or_ranges() -> None:
    assert parse_axis("optimizer.lr=0.02,0.05") == ("optimizer.lr", [0.02, 0.05])
    assert parse_axis("seed=0,1,2") == ("seed", [0, 1, 2])
    assert parse_axis("optimizer.name=sgd,adam") == ("optimizer.name", ["sgd", "adam"])
    assert parse_axis("task.batch_norm=true,false") == ("task.batch_norm", [True, False])
    assert parse_axis("optimizer.lr=1e-4..1e-1:log") == (
        "optimizer.lr",
        {"low": 1e-4, "high": 0.1, "log": True},
    )
    assert parse_axis("task.hidden=8..64:int")[1] == {"low": 8, "high": 64, "int": True}


@pytest.mark.parametrize("text", ["optimizer.lr", "=1,2", "lr=", "lr=1..x", "lr=1..2:cube"])
def test_malformed_axes_are_refused(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_axis(text)


def test_random_search_body() -> None:
    body = sweep_body({"steps": 5}, ["seed=0,1", "optimizer.lr=0.1..1"], random=7, seed=3)
    assert body == {
        "base": {"steps": 5},
        "axes": {"seed": [0, 1], "optimizer.lr": {"low": 0.1, "high": 1.0}},
        "mode": "random",
        "count": 7,
        "seed": 3,
    }
    assert "mode" not in sweep_body({}, ["seed=0"], random=None, seed=0)
