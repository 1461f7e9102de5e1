"""The worker's Celery app: ``celery -A worker.celery_app worker --pool solo``.

``observatory worker`` starts it with the right flags.  One process per GPU, solo pool (CUDA and
fork do not mix), late acks and prefetch 1, all set in ``server.broker.make_celery``.
"""

from __future__ import annotations

import threading

from celery.signals import worker_init, worker_ready, worker_shutting_down

from server.broker import TRAIN_TASK, celery_for
from server.config import get_settings
from worker.catalog import publish_catalog
from worker.identity import process_identity
from worker.reaper import start_reaper
from worker.runner import execute_run
from worker.sink import SHUTDOWN
from worker.threads import apply_torch_threads

app = celery_for(get_settings())
_stop_reaper = threading.Event()


@app.task(name=TRAIN_TASK, bind=True)
def train_run(self, run_id: int) -> str:  # noqa: ANN001 - Celery's bound task
    return execute_run(run_id, get_settings(), process_identity(self.request.hostname))


@worker_init.connect
def _on_init(**_kwargs) -> None:
    """Before any task: torch's threads to this worker's share of the host (worker/threads.py)."""
    apply_torch_threads(get_settings())


@worker_ready.connect
def _on_ready(sender, **_kwargs) -> None:  # noqa: ANN001 - Celery signal
    start_reaper(get_settings(), process_identity(sender.hostname), _stop_reaper)
    publish_catalog(get_settings(), sender.hostname)  # the node name: a restart replaces its rows


@worker_shutting_down.connect
def _on_shutdown(**_kwargs) -> None:
    """Running training checkpoints and goes back to the queue instead of blocking shutdown."""
    SHUTDOWN.set()
    _stop_reaper.set()
