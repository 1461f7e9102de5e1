"""The background thread of a run: batches what the loop logged, spools it and sends it.

The training loop only appends to in-memory buffers (``Run.log`` is a list append, even for
device tensors).  Every ``flush_seconds``, or sooner when ``max_points`` are waiting, this thread
takes the buffers, reads all logged tensors in one transfer per device, appends the batch to the
spool and sends the unacknowledged records in order.  When the server is unreachable the records
wait in the spool (bounded) and the thread retries with back-off.
"""

from __future__ import annotations

import base64
import io
import logging
import queue
import threading
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from observatory import spool
from observatory.client import Connection, Rejected, Unreachable

if TYPE_CHECKING:
    from observatory.run import Run

log = logging.getLogger("observatory")
MAX_BACKOFF = 5.0


def read_values(values: list[Any]) -> list[float]:
    """Logged values as floats: tensors read in one transfer per device (a single host sync).

    Tensors of one device, dtype and shape are stacked as they are (one op for the group, not
    three per tensor), then converted to float64 and copied to the host together."""
    out = [0.0] * len(values)
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, value in enumerate(values):
        if isinstance(value, torch.Tensor):
            groups[value.device, value.dtype, value.shape].append(i)
        else:
            out[i] = float(value)
    with torch.no_grad():
        for indices in groups.values():
            stacked = torch.stack([values[i] for i in indices]).reshape(-1).double()
            for i, value in zip(indices, stacked.cpu().tolist(), strict=True):
                out[i] = value
    return out


def pack(arrays: dict[str, np.ndarray]) -> str:
    """Arrays as a base64 ``.npz`` (the server reads it without pickles)."""
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    return base64.b64encode(buffer.getvalue()).decode()


class Sender(threading.Thread):
    """Owns the spool and the connection; the only thread that touches either."""

    def __init__(self, owner: Run, connection: Connection | None) -> None:
        super().__init__(name=f"observatory-{owner.key[:8]}", daemon=True)
        self.owner, self.connection = owner, connection
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.flushes: queue.SimpleQueue[threading.Event] = queue.SimpleQueue()
        self.dropped_points = 0
        self.cpu_seconds = 0.0  # CPU time this thread spent in its ticks
        self.rejected: str | None = None  # why the server refused the run for good
        self._retry_at = 0.0
        self._backoff = 0.5
        self._last_beat = time.monotonic()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.wake.wait(self.owner.flush_seconds)
            self.wake.clear()
            self.tick()
            while not self.flushes.empty():
                self.flushes.get().set()

    def tick(self) -> None:
        started = time.thread_time()
        try:
            self.flush()
            self.send()
            self.beat()
        except Exception:  # the thread must not die: the records stay in the spool
            log.exception("observatory: sending failed; the records stay in the spool")
        self.cpu_seconds += time.thread_time() - started

    # --- batching ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Turn the buffered logs, events and arrays into batch records in the spool."""
        logs, events, arrays, probes = self.owner.take_buffers()
        if not (logs or events or arrays or probes):
            return
        names: list[str] = []
        steps: list[int] = []
        raw: list[Any] = []
        walls: list[float] = []
        for step, wall, values in logs:
            for name, value in values.items():
                names.append(name)
                steps.append(step)
                raw.append(value)
                walls.append(wall)
        values = read_values(raw)
        limit = self.owner.max_points
        chunks = range(0, max(1, len(names)), limit)
        for n, start in enumerate(chunks):
            end = start + limit
            record: dict[str, Any] = {
                "metrics": {
                    "name": names[start:end],
                    "step": steps[start:end],
                    "value": values[start:end],
                    "wall_time": walls[start:end],
                },
                "events": events if n == 0 else [],
                "arrays": [
                    {"probe": p, "step": s, "meta": m, "data": pack(a)} for p, s, a, m in arrays
                ]
                if n == 0
                else [],
                "step": self.owner.step,
                "probes": probes if n == 0 else None,
            }
            if not self.owner.spool.append(spool.BATCH, spool.encode(record)):
                self.dropped_points += len(record["metrics"]["name"])
                log.warning(
                    "observatory: spool full (%d bytes unsent); %d points dropped so far",
                    self.owner.spool.max_bytes,
                    self.dropped_points,
                )

    # --- sending ----------------------------------------------------------------------------

    def send(self, *, force: bool = False) -> bool:
        """Send the unacknowledged records in order; True when none is left."""
        if self.connection is None or self.rejected is not None:
            return False
        if not force and time.monotonic() < self._retry_at:
            return False
        try:
            if self.owner.id is None:
                self.owner.created(self.connection.create(self.owner.header))
            for end, kind, body in self.owner.spool.pending():
                if kind != spool.INIT:
                    self.connection.send(self.owner.id, kind, body)
                self.owner.spool.acked = end
                self._last_beat = time.monotonic()  # a batch renews the lease too
        except Unreachable as error:
            self._retry_at = time.monotonic() + self._backoff
            if self._backoff == 0.5:
                log.warning("observatory: server unreachable (%s); spooling", error)
            self._backoff = min(MAX_BACKOFF, 2 * self._backoff)
            return False
        except Rejected as error:
            self.rejected = str(error)
            log.error("observatory: the server refused the run (%s); spool kept", error)
            return False
        self._backoff = 0.5
        return True

    def beat(self) -> None:
        if self.connection is None or self.owner.id is None or self.rejected is not None:
            return
        if time.monotonic() - self._last_beat < self.owner.heartbeat_seconds:
            return
        try:
            answer = self.connection.heartbeat(self.owner.id, self.owner.key, self.owner.step)
            self.owner.cancel_requested = bool(answer.get("cancel_requested"))
            self._last_beat = time.monotonic()
        except (Unreachable, Rejected):
            pass  # the next batch or beat tries again

    def drain(self, finish: bytes, timeout: float) -> bool:
        """Flush, spool the finish record and send everything (up to ``timeout`` seconds);
        True when the server has it all.  Runs on the caller's thread after this one stopped."""
        self.flush()
        self.owner.spool.append(spool.FINISH, finish)
        deadline = time.monotonic() + timeout
        while True:
            if self.send(force=True):
                return True
            if self.connection is None or self.rejected is not None:
                return False
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(self._backoff, max(0.0, deadline - time.monotonic())))
