"""``observatory token create|list|revoke``: API tokens, on the database directly (like
``migrate``), so the first admin token can be made before anyone can log in."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import OperationalError, ProgrammingError

from server.config import Settings, get_settings
from server.db import session_scope
from server.store import tokens as token_store
from server.token_schemas import TokenCreate
from server.tokens import Scope

token_app = typer.Typer(help="API tokens (stored hashed; a secret is shown once, at creation).")
err = Console(stderr=True)  # the secret alone goes to stdout: TOKEN=$(observatory token create …)


def _database_url() -> str:
    return get_settings().resolved_database_url


def _unmigrated(error: Exception) -> typer.Exit:
    err.print(f"[red]no token table: run `observatory migrate` first[/] ({type(error).__name__})")
    return typer.Exit(2)


def warn_if_none(settings: Settings) -> None:
    """A server that requires tokens but has none answers 401 to everyone: say how to fix it."""
    try:
        with session_scope(settings.resolved_database_url) as session:
            if token_store.count_active(session):
                return
    except (OperationalError, ProgrammingError):
        return  # not migrated yet: the server's own errors will say so
    err.print(
        "[yellow]OBS_AUTH=required and no API token exists: every request will get 401.  "
        "Create one with `observatory token create --name admin --scope admin`.[/]"
    )


@token_app.command()
def create(
    name: Annotated[str, typer.Option(help="who or what holds it")],
    scope: Annotated[Scope, typer.Option(help="read < write < admin")] = Scope.read,
) -> None:
    """Create a token and print its secret (once: only its hash is kept)."""
    try:
        body = TokenCreate(name=name, scope=scope)
    except ValidationError as error:
        raise typer.BadParameter(error.errors()[0]["msg"], param_hint="--name") from error
    try:
        with session_scope(_database_url()) as session:
            token, secret = token_store.create_token(session, name=body.name, scope=body.scope)
            token_id, prefix = token.id, token.prefix
    except (OperationalError, ProgrammingError) as error:
        raise _unmigrated(error) from error
    err.print(f"token {token_id} ({prefix}, {scope}) for {name!r}; store it now, it is not kept:")
    typer.echo(secret)


@token_app.command("list")
def list_tokens() -> None:
    """List tokens (never their secrets)."""
    try:
        with session_scope(_database_url()) as session:
            tokens = token_store.list_tokens(session)
    except (OperationalError, ProgrammingError) as error:
        raise _unmigrated(error) from error
    table = Table("id", "name", "prefix", "scope", "created", "last used", "revoked")
    for t in tokens:
        table.add_row(
            str(t.id),
            t.name,
            t.prefix,
            t.scope,
            f"{t.created_at:%Y-%m-%d %H:%M}",
            f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "-",
            f"{t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "-",
        )
    Console().print(table)


@token_app.command()
def revoke(token: Annotated[str, typer.Argument(help="the token's id or prefix")]) -> None:
    """Revoke a token at once (new requests with it get 401)."""
    try:
        with session_scope(_database_url()) as session:
            row = token_store.find_token(session, token)
            if row is None:
                err.print(f"[red]no token {token!r}[/] (see `observatory token list`)")
                raise typer.Exit(1)
            token_store.revoke_token(session, token=row)
            token_id = row.id
    except (OperationalError, ProgrammingError) as error:
        raise _unmigrated(error) from error
    err.print(f"token {token_id} revoked")
