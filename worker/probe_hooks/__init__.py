"""Probe scheduling: loop hooks that run the probes of ``worker.probes`` and report results.

Each probe has a module here whose hook class takes that probe's config entry and the data it
probes (not the service's ``Task``), and runs on a ``common.ProbeStep``; the worker's loop drives
them through ``service`` (which builds their data from the task), the ``observatory`` SDK from a
user's own script.  The probe itself stays a plain library in ``worker.probes``; the hook only
schedules it and reports its results.
"""

from __future__ import annotations

from worker.probe_hooks.service import build_hooks

__all__ = ["build_hooks"]
