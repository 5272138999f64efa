"""Alembic migrations of the store, shipped inside the package (script_location adapter.store:migrations)."""
