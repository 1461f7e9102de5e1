"""API tokens: create, list, revoke, and look up the token a request presents."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from server.models import ApiToken, utcnow
from server.tokens import Scope, new_token, parse_prefix, verify

# last_used_at is a hint for `token list`, not an audit log: refreshing it at most once a minute
# keeps reads (and every reconnect of a live stream) from turning into writes.
TOUCH_EVERY = timedelta(minutes=1)


def create_token(session: Session, *, name: str, scope: Scope) -> tuple[ApiToken, str]:
    """Adds a token; returns the row and its secret (the only time the secret exists)."""
    while True:
        fresh = new_token()
        if session.scalar(select(ApiToken.id).where(ApiToken.prefix == fresh.prefix)) is None:
            break  # 48-bit prefixes: a collision is astronomically rare, but must not be a 500
    token = ApiToken(name=name, prefix=fresh.prefix, digest=fresh.digest, scope=scope.value)
    session.add(token)
    session.flush()
    return token, fresh.secret


def list_tokens(session: Session, *, include_revoked: bool = True) -> list[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.id)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return list(session.scalars(query))


def count_active(session: Session) -> int:
    query = select(func.count()).select_from(ApiToken).where(ApiToken.revoked_at.is_(None))
    return session.scalar(query) or 0


def find_token(session: Session, ident: str) -> ApiToken | None:
    """A token by its id or its public prefix."""
    conditions = [ApiToken.prefix == ident]
    if ident.isdigit() and len(ident) < 10:
        conditions.append(ApiToken.id == int(ident))
    return session.scalars(select(ApiToken).where(or_(*conditions))).first()


def revoke_token(session: Session, *, token: ApiToken) -> None:
    if token.revoked_at is None:
        token.revoked_at = utcnow()


def authenticate(session: Session, secret: str, *, now: datetime | None = None) -> ApiToken | None:
    """The active token whose secret this is, else None; refreshes its ``last_used_at``."""
    prefix = parse_prefix(secret)
    if prefix is None:
        return None
    token = session.scalars(select(ApiToken).where(ApiToken.prefix == prefix)).first()
    if token is None or token.revoked_at is not None or not verify(secret, token.digest):
        return None
    now = now or utcnow()
    if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
        token.last_used_at = now
    return token
