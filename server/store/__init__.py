"""Persistence: keyword-only functions over a SQLAlchemy session, one module per resource."""
