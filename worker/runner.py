"""One run from claim to finish: the body of the Celery task, kept free of Celery."""

from __future__ import annotations

import logging
import traceback

from pydantic import ValidationError
from sqlalchemy import select

from server.broker import enqueue_run, notify
from server.config import Settings
from server.datasets import DatasetError
from server.db import get_sessionmaker
from server.models import Run, RunStatus
from server.schemas import RunConfig
from server.store import runs as run_store
from worker.probe_hooks import build_hooks
from worker.sink import DatabaseReporter
from worker.training.checkpoint import ReportedCheckpoints
from worker.training.loop import resolve_device, train

log = logging.getLogger(__name__)


def execute_run(run_id: int, settings: Settings, worker: str) -> str:
    """Claim, train and finish run ``run_id``; returns what happened (for logs and tests)."""
    sessions = get_sessionmaker(settings.resolved_database_url)
    with sessions() as session:
        run = session.get(Run, run_id)
        if run is None:
            return "deleted"
        try:
            config = RunConfig.model_validate(run.config)
            device = resolve_device(config.device)
        except (ValidationError, RuntimeError) as error:
            run_store.fail_unclaimed(session, run_id=run_id, error=str(error))
            notify(settings, run_id)
            return "failed"
        if not run_store.claim_run(
            session,
            run_id=run_id,
            worker=worker,
            device=str(device),
            lease_seconds=settings.lease_seconds,
            max_attempts=settings.max_attempts,
        ):
            if session.scalar(select(Run.status).where(Run.id == run_id)) == RunStatus.failed:
                # out of attempts (or failed before): nothing will resume from the checkpoint
                settings.checkpoint_path(run_id).unlink(missing_ok=True)
                notify(settings, run_id)
            return "skipped"  # finished, cancelled, or alive on another worker
    notify(settings, run_id)
    log.info("run %s: training on %s", run_id, device)

    reporter = DatabaseReporter(settings, run_id=run_id, worker=worker)
    checkpoints = ReportedCheckpoints(settings.resolved_checkpoint_dir, run_id, reporter)
    step, error = 0, None
    try:
        outcome = train(
            config,
            reporter,
            checkpoints=checkpoints,
            hooks=build_hooks(config),
            max_parameters=settings.max_parameters,
        )
        step, error = outcome.step, outcome.extra.get("error")
        # An interrupted run (worker shutting down) checkpointed and goes back to the queue.
        status = RunStatus.queued if outcome.status == "interrupted" else RunStatus(outcome.status)
    except DatasetError as problem:  # the user's data set: its message says what to fix
        error, status = str(problem), RunStatus.failed
        log.warning("run %s failed: %s", run_id, problem)
    except Exception:  # the run fails, the worker lives on; the traceback is kept on the run
        error = traceback.format_exc()
        status = RunStatus.failed
        log.exception("run %s failed", run_id)
        try:
            reporter.flush()
        except Exception:  # the original error is the one worth keeping
            log.exception("run %s: flushing after the failure failed too", run_id)
    reporter.close()
    discard = False  # the checkpoint: kept for a resume, or by request of a completed run
    with sessions() as session:
        if status == RunStatus.queued:
            run_store.release_run(session, run_id=run_id, worker=worker, step=step)
            enqueue_run(settings, run_id=run_id, queue=config.queue)
        else:
            ended = run_store.finish_run(
                session, run_id=run_id, worker=worker, status=status, step=step, error=error
            )
            # A run another worker took over resumes from it; a deleted one never will.
            discard = ended or session.get(Run, run_id) is None
    if discard and not (status == RunStatus.completed and config.keep_checkpoint):
        checkpoints.delete()
    notify(settings, run_id)
    return status.value
