"""Alembic environment: runs on the connection the store hands over (config.attributes["connection"]).

On PostgreSQL a session-wide advisory lock makes several service processes starting at once migrate
one after the other; on SQLite the store's BEGIN IMMEDIATE does the same.
"""

from alembic import context

from adapter.store.schema import Base

MIGRATION_LOCK = 0x6F6C69676F  # "oligo"

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
if connection.dialect.name == "postgresql":
    connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
with context.begin_transaction():
    context.run_migrations()
