"""A worker process's identity: what its claims, heartbeats and presence key carry.

Celery's node name (``celery@<host>`` unless ``--name`` says otherwise) is not unique: two workers
started on one host without ``--name`` share it, and a reaper skips the runs carrying its own
identity, so a dead worker's run would stay ``running`` forever.  The identity adds the process id
and a random suffix, whatever the node name is.
"""

from __future__ import annotations

import os
import uuid
from functools import lru_cache


@lru_cache
def _instance(pid: int) -> str:
    return f"{pid}.{uuid.uuid4().hex[:8]}"


def process_identity(node: str) -> str:
    """``<node>#<pid>.<random>``: stable within this process, unique across processes."""
    return f"{node}#{_instance(os.getpid())}"
