"""Alembic environment for the tenant database (shared body: funnel.platform.migration_helpers)."""
from funnel.platform.migration_helpers import run_environment

run_environment()
