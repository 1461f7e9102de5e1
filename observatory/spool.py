"""The spool: an append-only file of a run's records, sent in order and kept until acknowledged.

Every record the client produces (the run's header, batches of points/arrays/events, its finish)
is appended here first and sent from here, so a server that is down or restarting loses nothing:
the sender resumes at the first unacknowledged record.  A record is ``<u32 length><kind><gzip
JSON>``, kind ``i`` (the header: how to create or resume the run; always first), ``b`` (a batch)
or ``f`` (the finish), so ``observatory sync`` can upload a spool written offline or left behind
by a process that could not reach the server.
"""

from __future__ import annotations

import gzip
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

HEAD = struct.Struct("<Ic")  # body length, kind
SUFFIX = ".spool"
INIT, BATCH, FINISH = b"i", b"b", b"f"


def encode(record: dict[str, Any]) -> bytes:
    """A record as gzip JSON (the body of one request)."""
    return gzip.compress(json.dumps(record, separators=(",", ":")).encode(), compresslevel=1)


def decode(body: bytes) -> dict[str, Any]:
    return json.loads(gzip.decompress(body))


class Spool:
    """One run's spool file; ``acked`` is the offset up to which the server has everything."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path, self.max_bytes = path, max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab")
        self.size = self._file.tell()
        self.acked = 0

    def append(self, kind: bytes, body: bytes) -> bool:
        """Append one encoded record; a batch is dropped (False) when the unsent part would pass
        the bound (the header and the finish record never are)."""
        if kind == BATCH and self.size - self.acked + len(body) > self.max_bytes:
            return False
        self._file.write(HEAD.pack(len(body), kind) + body)
        self._file.flush()
        self.size += HEAD.size + len(body)
        return True

    def pending(self) -> Iterator[tuple[int, bytes, bytes]]:
        """``(end offset, kind, body)`` of each record not yet acknowledged, in order."""
        with self.path.open("rb") as reader:
            reader.seek(self.acked)
            yield from _records(reader, self.size)

    def close(self) -> None:
        self._file.close()


def read(path: Path) -> Iterator[tuple[int, bytes, bytes]]:
    """Every complete record of a spool file (a torn last record, from a crash, is skipped)."""
    with path.open("rb") as reader:
        yield from _records(reader, path.stat().st_size)


def _records(reader: BinaryIO, end: int) -> Iterator[tuple[int, bytes, bytes]]:
    offset = reader.tell()
    while offset + HEAD.size <= end:
        length, kind = HEAD.unpack(reader.read(HEAD.size))
        if offset + HEAD.size + length > end:
            return
        body = reader.read(length)
        offset += HEAD.size + length
        yield offset, kind, body
