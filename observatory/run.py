"""``observatory.init`` and the ``Run`` a user's script logs to."""

from __future__ import annotations

import atexit
import logging
import os
import socket
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
import torch

from observatory import spool
from observatory.client import Connection, Rejected, Unreachable
from observatory.scheduler import Probes
from observatory.sender import Sender

log = logging.getLogger("observatory")
DEFAULT_SERVER = "http://127.0.0.1:8000"
DEFAULT_SPOOL = Path.home() / ".cache" / "observatory" / "spool"
ACTIVE: list[Run] = []  # runs finished on exit or on an uncaught exception


class Run:
    """A run on the server (``origin: sdk``) fed from this process.

    ``log`` and the probes only append to buffers; a background thread sends them (see
    ``observatory.sender``).  ``finish`` ends the run; on interpreter exit an unfinished run is
    finished as ``completed``, on an uncaught exception as ``failed`` with the traceback.
    """

    def __init__(
        self,
        *,
        header: dict[str, Any],
        connection: Connection | None,
        spool_dir: Path,
        spool_max_bytes: int,
        flush_seconds: float,
        heartbeat_seconds: float,
        max_points: int,
    ) -> None:
        self.header = header
        self.key: str = header["key"]
        self.id: int | None = None
        self.url: str | None = None
        self.step = 0
        self.cancel_requested = False
        self.flush_seconds, self.heartbeat_seconds = flush_seconds, heartbeat_seconds
        self.max_points = max_points
        self.finished = False
        name = self.key.rsplit(":", 1)[-1]  # the key's uuid: a portable file name
        self.spool = spool.Spool(spool_dir / f"{name}{spool.SUFFIX}", spool_max_bytes)
        self.spool.append(spool.INIT, spool.encode(header))
        self._lock = threading.Lock()
        self._logs: list[tuple[int, float, dict[str, Any]]] = []
        self._events: list[dict[str, Any]] = []
        self._arrays: list[tuple[str, int, dict[str, np.ndarray], dict]] = []
        self._pending = 0
        self._probes: dict[str, dict] = {}
        self._sender = Sender(self, connection)
        self._connection = connection

    def created(self, run: dict[str, Any]) -> None:
        self.id = run["id"]
        if self._connection is not None:
            self.url = f"{self._connection.server}/runs/{self.id}"

    # --- logging ----------------------------------------------------------------------------

    def log(self, values: dict[str, float | torch.Tensor], step: int) -> None:
        """Record scalar values at ``step``.  Tensors (one element, any device) are kept as they
        are and read later, all together, on the background thread: no device sync here."""
        for name, value in values.items():
            if isinstance(value, torch.Tensor) and value.numel() != 1:
                raise ValueError(f"{name}: a logged tensor must have one element")
        with self._lock:
            self._logs.append((step, time.time(), dict(values)))
            self._pending += len(values)
            self.step = max(self.step, step)
            full = self._pending >= self.max_points
        if full:
            self._sender.wake.set()

    def metrics(self, step: int, values: dict[str, float]) -> None:
        """The probes' reporter interface (``worker.probe_hooks.common.Reporter``)."""
        self.log(values, step)

    def event(self, step: int, kind: str, payload: dict[str, Any] | None = None) -> None:
        with self._lock:
            self._events.append({"step": step, "kind": kind, "payload": payload or {}})

    def arrays(self, probe: str, step: int, arrays: dict[str, np.ndarray], meta: dict) -> None:
        with self._lock:
            self._arrays.append((probe, step, arrays, meta))

    def describe_probes(self, configs: dict[str, dict]) -> None:
        """Send the probes' configs with the next batch (the run's ``config.probes``)."""
        with self._lock:
            self._probes.update(configs)

    def take_buffers(self) -> tuple[list, list, list, dict]:
        with self._lock:
            taken = self._logs, self._events, self._arrays, self._probes
            self._logs, self._events, self._arrays, self._pending = [], [], [], 0
            self._probes = {}
        return taken

    def flush(self, timeout: float = 30.0) -> bool:
        """Hand everything logged so far to the background thread now and wait until it has
        spooled it and tried to send it (e.g. before a checkpoint).  False on a timeout."""
        done = threading.Event()
        self._sender.flushes.put(done)
        self._sender.wake.set()
        return done.wait(timeout)

    def probes(
        self,
        model: torch.nn.Module,
        loss_fn: Any,  # noqa: ANN401 - any callable (outputs, targets) -> loss
        probe_data: Any,  # noqa: ANN401 - batches: see Probes
        **kwargs: Any,  # noqa: ANN401
    ) -> Probes:
        """The probes of ``worker.probe_hooks`` on this run: see ``observatory.Probes``."""
        return Probes(self, model, loss_fn, probe_data, **kwargs)

    # --- the end ----------------------------------------------------------------------------

    def finish(
        self,
        status: Literal["completed", "failed"] = "completed",
        error: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        """Send what is left and end the run.  If the server cannot be reached within
        ``timeout`` seconds the spool stays on disk: ``observatory sync`` uploads it later."""
        if self.finished:
            return
        self.finished = True
        if self in ACTIVE:
            ACTIVE.remove(self)
        self._sender.stopping.set()
        self._sender.wake.set()
        self._sender.join()
        record = {"status": status, "error": error, "step": self.step}
        done = self._sender.drain(spool.encode(record), timeout)
        self.spool.close()
        if done:
            self.spool.path.unlink(missing_ok=True)
        elif self._connection is not None:
            log.warning(
                "observatory: run not fully sent; upload it with: observatory sync %s",
                self.spool.path.parent,
            )
        if self._connection is not None:
            self._connection.close()

    @property
    def background_seconds(self) -> float:
        """CPU seconds the background thread spent batching, encoding, spooling and sending."""
        return self._sender.cpu_seconds

    @property
    def dropped_points(self) -> int:
        """Points dropped because the spool was full while the server was unreachable."""
        return self._sender.dropped_points

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None:
            self.finish()
        else:
            self.finish("failed", "".join(traceback.format_exception(kind, value, tb)))


def init(
    name: str | None = None,
    config: dict[str, Any] | None = None,
    tags: list[str] | tuple[str, ...] = (),
    server: str | None = None,
    token: str | None = None,
    mode: Literal["online", "offline"] = "online",
    resume: int | None = None,
    *,
    total_steps: int | None = None,
    spool_dir: str | Path | None = None,
    spool_max_bytes: int = 1 << 30,
    flush_seconds: float = 1.0,
    heartbeat_seconds: float | None = None,
    max_points: int = 50_000,
) -> Run:
    """Start (or with ``resume=run_id`` continue) a run on the server.

    ``server``/``token`` default to ``OBS_API_URL``/``OBS_TOKEN``.  ``mode="offline"`` only
    writes the spool (in ``spool_dir``, default ``OBS_SPOOL_DIR`` or ~/.cache/observatory/spool);
    ``observatory sync DIR`` uploads it later.  ``spool_max_bytes`` bounds what waits unsent;
    past it, new points are dropped (``Run.dropped_points``).  ``heartbeat_seconds`` (default
    ``OBS_HEARTBEAT_SECONDS`` or 5) must stay well below the server's lease
    (``OBS_LEASE_SECONDS``, 60 s by default), or a quiet run is marked ``lost``.
    """
    if mode not in ("online", "offline"):
        raise ValueError(f"mode must be 'online' or 'offline', not {mode!r}")
    server = server or os.environ.get("OBS_API_URL") or DEFAULT_SERVER
    token = token or os.environ.get("OBS_TOKEN") or None
    directory = Path(spool_dir or os.environ.get("OBS_SPOOL_DIR") or DEFAULT_SPOOL)
    config = dict(config or {})
    header = {
        "key": f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}",
        "name": name,
        "config": config,
        "tags": list(tags),
        "resume": resume,
        "total_steps": total_steps,
    }
    connection = Connection(server, token) if mode == "online" else None
    run = Run(
        header=header,
        connection=connection,
        spool_dir=directory,
        spool_max_bytes=spool_max_bytes,
        flush_seconds=flush_seconds,
        heartbeat_seconds=heartbeat_seconds or float(os.environ.get("OBS_HEARTBEAT_SECONDS", 5)),
        max_points=max_points,
    )
    if connection is not None:
        try:
            run.created(connection.create(header))
        except Unreachable as error:  # the background thread creates it once the server is up
            log.warning("observatory: %s unreachable (%s); spooling until it is up", server, error)
        except Rejected as error:
            run.spool.close()
            run.spool.path.unlink(missing_ok=True)
            raise ValueError(f"the server refused the run: {error}") from error
    ACTIVE.append(run)
    _install_hooks()
    run._sender.start()
    return run


_installed = False


def _install_hooks() -> None:
    """Finish the active runs at exit (completed) and on an uncaught exception (failed)."""
    global _installed
    if _installed:
        return
    _installed = True
    previous = sys.excepthook

    def excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType) -> None:
        error = "".join(traceback.format_exception(kind, value, tb))
        for run in list(ACTIVE):
            run.finish("failed", error)
        previous(kind, value, tb)

    sys.excepthook = excepthook
    atexit.register(lambda: [run.finish() for run in list(ACTIVE)])
