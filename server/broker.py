"""The Celery app (shared by the server, which only sends, and the workers) and run notifications.

Both sides build it from the same settings.  Long GPU tasks need: late acks (a task killed mid-run
is not lost), prefetch 1 (a busy worker does not hoard queued runs), and a Redis visibility timeout
longer than any run, so that Redis never re-delivers a run that a live worker still trains.  A dead
worker's run is handed on through the lease on the run row instead (``worker.reaper``).
"""

from __future__ import annotations

import base64
import contextlib
import json
from functools import lru_cache

import redis
from celery import Celery
from kombu import Queue

from server.config import Settings

TRAIN_TASK = "observatory.train_run"
QUEUES = ("cpu", "gpu", "any")


def channel(run_id: int) -> str:
    return f"observatory:run:{run_id}"


def control_channel(run_id: int) -> str:
    """Where the server wakes the worker training a run (cancel, delete)."""
    return f"observatory:run:{run_id}:control"


@lru_cache(maxsize=4)
def make_celery(broker_url: str, visibility_timeout: int) -> Celery:
    app = Celery("observatory", broker=broker_url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="any",
        broker_transport_options={"visibility_timeout": visibility_timeout},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    return app


def celery_for(settings: Settings) -> Celery:
    return make_celery(settings.resolved_broker_url, settings.visibility_timeout)


def enqueue_run(settings: Settings, *, run_id: int, queue: str) -> None:
    """Send ``train_run(run_id)``; call only after the run row is committed."""
    celery_for(settings).send_task(TRAIN_TASK, args=[run_id], queue=queue)


# kombu's Redis transport: one list per queue and priority step, delivered-but-unacknowledged
# messages in one hash (``[message, exchange, routing key]`` per delivery tag).
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
_UNACKED = "unacked"


def pending_runs(settings: Settings) -> set[int]:
    """Ids of the runs whose ``train_run`` message the broker holds: waiting in a queue, or
    delivered to a worker and not yet acknowledged.  A queued run missing here lost its message
    (e.g. Redis restarted without persistence) and must be sent again."""
    client = _redis(settings.redis_url)
    raw = [m for q in QUEUES for s in _PRIORITY_SUFFIXES for m in client.lrange(q + s, 0, -1)]
    messages = [json.loads(m) for m in raw]
    messages += [json.loads(entry)[0] for entry in client.hvals(_UNACKED)]
    pending = set()
    for message in messages:
        if message.get("headers", {}).get("task") != TRAIN_TASK:
            continue
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        pending.add(int(args[0]))
    return pending


@lru_cache(maxsize=4)
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def notify(settings: Settings, run_id: int) -> None:
    """Wake the live streams of a run: new points, events or a status change were committed."""
    # On failure, streams still see the write at their next poll (OBS_STREAM_POLL_SECONDS).
    with contextlib.suppress(redis.RedisError):
        _redis(settings.redis_url).publish(channel(run_id), b"1")


def wake_worker(settings: Settings, run_id: int) -> None:
    """Make the worker training ``run_id`` beat now, so that it reads its cancel flag at once.

    Only a shortcut: the flag in the database is the truth, read at every heartbeat anyway, so a
    lost message (Redis down, a worker that subscribed late) delays a cancel by one beat at most.
    """
    with contextlib.suppress(redis.RedisError):
        _redis(settings.redis_url).publish(control_channel(run_id), b"1")


def subscribe_control(settings: Settings, run_id: int) -> redis.client.PubSub | None:
    """A subscription to the run's control channel, or None where Redis cannot be reached."""
    pubsub = _redis(settings.redis_url).pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(control_channel(run_id))
    except redis.RedisError:
        pubsub.close()
        return None
    return pubsub


def broker_reachable(settings: Settings) -> bool:
    try:
        return bool(_redis(settings.redis_url).ping())
    except redis.RedisError:
        return False


WORKER_KEY = "observatory:worker:"


def announce_worker(settings: Settings, name: str, ttl: float) -> None:
    """A worker's presence key, renewed by its reaper thread.  A solo-pool worker that is
    training cannot answer Celery's broadcast ping, so presence is a key with an expiry."""
    _redis(settings.redis_url).set(WORKER_KEY + name, b"1", px=int(ttl * 1000))


def retire_worker(settings: Settings, name: str) -> None:
    with contextlib.suppress(redis.RedisError):
        _redis(settings.redis_url).delete(WORKER_KEY + name)


def workers_seen(settings: Settings) -> list[str]:
    keys = _redis(settings.redis_url).scan_iter(match=WORKER_KEY + "*", count=1000)
    return sorted(key.decode().removeprefix(WORKER_KEY) for key in keys)
