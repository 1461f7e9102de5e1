"""Torch's intra-op threads: a worker uses the cores it owns, not every core of its host.

PyTorch's CPU pool starts one thread per core, and its OpenMP threads spin while they wait for
each other: two such workers on one host — or one worker beside other busy processes — keep
more threads runnable than there are cores, and every parallel op waits for a thread that is
not scheduled (``bench/thread_oversubscription.py`` measures it).  Each worker therefore takes
``OBS_TORCH_THREADS``, or by default its share of the cores it may run on:
``cores // OBS_HOST_WORKERS`` (at least 1).  ``observatory worker`` also sets
``OMP_WAIT_POLICY=PASSIVE`` before torch loads (unless ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``
is set): idle OpenMP threads then sleep at once instead of spinning, which alone made the EoS
preset 8x faster per step on the busy development machine.  The operator who starts N workers
on a host says so with ``OBS_HOST_WORKERS=N``; workers do not discover each other, because
workers started together would each count the others absent and the count would change under a
running run.
"""

from __future__ import annotations

import logging
import os

import torch

from server.config import Settings

__all__ = ["apply_torch_threads", "host_cores", "torch_threads"]

log = logging.getLogger(__name__)


def host_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def torch_threads(settings: Settings, cores: int | None = None) -> int:
    """``OBS_TORCH_THREADS`` if set, else this worker's share of the host's cores."""
    if settings.torch_threads is not None:
        return settings.torch_threads
    return max(1, (cores or host_cores()) // settings.host_workers)


def apply_torch_threads(settings: Settings) -> int:
    """Set torch's intra-op threads for this process (a worker, before it trains)."""
    threads = torch_threads(settings)
    torch.set_num_threads(threads)
    log.info(
        "torch intra-op threads: %d (%s); OpenMP wait policy: %s",
        torch.get_num_threads(),
        "OBS_TORCH_THREADS"
        if settings.torch_threads is not None
        else f"{host_cores()} cores / OBS_HOST_WORKERS={settings.host_workers}",
        os.environ.get("OMP_WAIT_POLICY", "the runtime's default"),
    )
    return threads
