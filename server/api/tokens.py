"""API tokens over the API (admin scope): list, create, revoke.  ``observatory token`` does the
same on the database directly."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Response

from server.api.auth import require_admin
from server.api.deps import SessionDep
from server.models import ApiToken
from server.store import tokens as token_store
from server.token_schemas import TokenCreate, TokenCreated, TokenPublic, TokensPublic

router = APIRouter(prefix="/tokens", tags=["tokens"], dependencies=[Depends(require_admin)])


@router.get("", response_model=TokensPublic)
def list_tokens(session: SessionDep) -> TokensPublic:
    tokens = token_store.list_tokens(session)
    return TokensPublic(data=[TokenPublic.model_validate(t) for t in tokens], count=len(tokens))


@router.post("", status_code=201, response_model=TokenCreated)
def create_token(body: TokenCreate, session: SessionDep) -> TokenCreated:
    token, secret = token_store.create_token(session, name=body.name, scope=body.scope)
    session.commit()
    return TokenCreated(**TokenPublic.model_validate(token).model_dump(), secret=secret)


def get_token(session: SessionDep, token_id: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise HTTPException(status_code=404, detail=f"token {token_id} not found")
    return token


@router.delete("/{token_id}", status_code=204)
def revoke_token(token: Annotated[ApiToken, Depends(get_token)], session: SessionDep) -> Response:
    """Revokes the token at once (its row stays, for `token list`)."""
    token_store.revoke_token(session, token=token)
    session.commit()
    return Response(status_code=204)
