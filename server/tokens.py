"""API token secrets and scopes (pure functions: no database, no web framework).

A token reads ``obs_<prefix>_<secret>``: ``prefix`` (12 hex digits) is public and names the row,
``secret`` is 256 random bits.  Only the SHA-256 digest of the whole token is stored.  A fast hash
is enough because the input has 256 bits of entropy (a slow hash protects guessable passwords,
which these are not); the stored digest is compared in constant time.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

__all__ = ["NewToken", "Scope", "digest", "new_token", "parse_prefix", "verify"]

TOKEN_RE = re.compile(r"obs_([0-9a-f]{12})_[A-Za-z0-9_-]{43}")


class Scope(enum.StrEnum):
    """What a token may do; each scope implies the ones before it."""

    read = "read"  # every GET: runs, metrics, results, the live stream
    write = "write"  # also submit, cancel and delete runs (every other method)
    admin = "admin"  # also manage tokens over the API (/api/tokens)

    def allows(self, needed: Scope) -> bool:
        return _RANK[self] >= _RANK[needed]


_RANK = {Scope.read: 0, Scope.write: 1, Scope.admin: 2}


@dataclass(frozen=True)
class NewToken:
    secret: str  # shown once, never stored
    prefix: str
    digest: str


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token() -> NewToken:
    prefix = secrets.token_hex(6)
    secret = f"obs_{prefix}_{secrets.token_urlsafe(32)}"
    return NewToken(secret=secret, prefix=prefix, digest=digest(secret))


def parse_prefix(secret: str) -> str | None:
    """The public prefix of a well-formed token, else None (then no database lookup happens)."""
    match = TOKEN_RE.fullmatch(secret)
    return match.group(1) if match else None


def verify(secret: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(secret), stored_digest)
