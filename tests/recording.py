"""A reporter for the training loop that keeps everything in memory, as the database would."""

from __future__ import annotations


class Recorder:
    """Points, events and array results by key; the last write of a key wins (upserts)."""

    def __init__(self) -> None:
        self.points: dict[int, dict[str, float]] = {}
        self.events: dict[tuple[str, int], dict] = {}
        self.results: dict[tuple[str, int], tuple[dict, dict]] = {}

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self.points.setdefault(step, {}).update(values)

    def event(self, step: int, kind: str, payload: dict) -> None:
        self.events[kind, step] = payload

    def arrays(self, probe: str, step: int, arrays: dict, meta: dict) -> None:
        self.results[probe, step] = (arrays, meta)

    def flush(self) -> None:
        pass

    def stop_reason(self, step: int) -> str | None:
        return None
