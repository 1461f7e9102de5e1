"""Schemas of API tokens (``/api/tokens``) and of the dashboard session (``/api/session``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from server.tokens import Scope

TokenName = Field(
    min_length=1,
    max_length=100,
    pattern=r"^[^\x00-\x1f\x7f]+$",
    description="who or what holds the token",
)


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = TokenName
    scope: Scope = Field(
        default=Scope.read, description="read < write (submit, cancel, delete) < admin (tokens)"
    )


class TokenPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str = Field(description="public part of the token, for telling tokens apart")
    scope: Scope
    created_at: datetime
    last_used_at: datetime | None = Field(description="refreshed at most once a minute")
    revoked_at: datetime | None


class TokenCreated(TokenPublic):
    secret: str = Field(description="the token itself: shown this once, stored only hashed")


class TokensPublic(BaseModel):
    data: list[TokenPublic]
    count: int


class SessionPublic(BaseModel):
    auth: Literal["open", "required"]
    name: str
    scope: Scope
