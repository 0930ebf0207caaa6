"""Running the Alembic migrations that ship inside this package.

The store's ``migrate()`` calls :func:`upgrade` on a sync connection (through
``AsyncConnection.run_sync``), so no second engine or ``alembic.ini`` is needed at run time.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateSchema

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# Any constant works; it only has to be the same for every process migrating this database.
_PG_MIGRATION_LOCK = 0x4A4F55524E4559  # "JOURNEY"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations, optionally bound to ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection, revision: str = "head", *, schema: str | None = None) -> None:
    """Upgrade the database behind ``connection`` to ``revision``; a no-op when already there.

    ``schema`` (PostgreSQL) is created first if missing; the connection's search_path must
    already point at it. Several processes may call this at once (workers and API processes
    booting together): they are serialised by a lock held until the caller's transaction ends.
    """
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
        if schema is not None:
            connection.execute(CreateSchema(schema, if_not_exists=True))
    elif connection.dialect.name == "sqlite":
        # Take the write lock now rather than at the first DDL statement (the driver does not
        # begin a transaction for DDL), which also makes the migration transactional.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    command.upgrade(alembic_config(connection), revision)
