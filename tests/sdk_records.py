"""Reading what the SDK wrote to its spool: the points, events and arrays of each batch."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np

from observatory import spool


class SpoolContents:
    """Everything in one spool file, keyed like the database (the last write of a key wins)."""

    def __init__(self, path: Path) -> None:
        self.points: dict[int, dict[str, float | None]] = {}
        self.events: dict[tuple[str, int], dict] = {}
        self.results: dict[tuple[str, int], tuple[dict, dict]] = {}
        self.header: dict = {}
        self.finish: dict | None = None
        self.batches = 0
        for _, kind, body in spool.read(path):
            record = spool.decode(body)
            if kind == spool.INIT:
                self.header = record
            elif kind == spool.FINISH:
                self.finish = record
            else:
                self.batches += 1
                self._add(record)

    def _add(self, record: dict) -> None:
        m = record["metrics"]
        for name, step, value in zip(m["name"], m["step"], m["value"], strict=True):
            self.points.setdefault(step, {})[name] = value
        for event in record["events"]:
            self.events[event["kind"], event["step"]] = event["payload"]
        for entry in record["arrays"]:
            blob = io.BytesIO(base64.b64decode(entry["data"]))
            with np.load(blob, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            self.results[entry["probe"], entry["step"]] = (arrays, entry["meta"])


def only_file(directory: Path) -> Path:
    [path] = directory.glob(f"*{spool.SUFFIX}")
    return path
