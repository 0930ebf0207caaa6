"""The analytics tests run against the store fixtures' databases (SQLite, and PostgreSQL when
``JOURNEY_TEST_POSTGRES_URL`` is set) and the CDNOW data set of the importer tests."""

from __future__ import annotations

from tests.importers.conftest import (  # noqa: F401
    cdnow_path,
    empty_store,
    import_backend,
    import_targets,
)
from tests.store.conftest import backend, session_store, store, target, targets  # noqa: F401
