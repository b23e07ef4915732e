"""Alembic environments of Funnel, shipped in the product package as `funnel.migrations` (see setup.py)."""
