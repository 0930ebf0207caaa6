"""The store's one retry policy for a transaction that lost a race: run it again, after a
jittered exponential backoff (tenacity), a bounded number of times.

A transaction that PostgreSQL aborted as a deadlock victim or a serialisation failure, that
lost a unique-key race, or that found SQLite's database locked by another process past its busy
timeout did nothing (it was rolled back whole), so running it again is safe. Without a pause,
two transactions that deadlocked tend to meet again at once; the random part of the wait
spreads them apart.

Use::

    async for attempt in retrying():
        with attempt:
            async with self._transaction() as conn:
                ...
                return result
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

log = structlog.get_logger(__name__)

ATTEMPTS = 5
"""Runs of a transaction that keeps losing races, the first included."""
FIRST_WAIT = 0.01
"""Seconds: the first pause is up to this, each next one up to twice the last."""
MAX_WAIT = 1.0

# deadlock_detected, serialization_failure: the transaction did nothing and may run again.
_RETRYABLE_PGCODES = frozenset({"40P01", "40001"})


def lost_race(exc: BaseException) -> bool:
    """A unique-key race lost, a PostgreSQL deadlock or serialisation failure, or SQLite's
    database locked by another writer: the transaction was rolled back and may run again."""
    if isinstance(exc, IntegrityError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if getattr(exc.orig, "sqlstate", None) in _RETRYABLE_PGCODES:
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def sqlite_locked(exc: BaseException) -> bool:
    """Only SQLite's busy error (for work that must not be repeated on any other error)."""
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def retrying(
    attempts: int = ATTEMPTS,
    *,
    when: Callable[[BaseException], bool] = lost_race,
    first_wait: float = FIRST_WAIT,
    max_wait: float = MAX_WAIT,
) -> AsyncRetrying:
    """The policy: up to ``attempts`` runs while ``when(error)`` says the error is worth
    another run, pausing a random time up to ``first_wait * 2**n`` (at most ``max_wait``);
    the last error is raised as it is."""
    return AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=first_wait, max=max_wait),
        retry=retry_if_exception(when),
        reraise=True,
        before_sleep=_log_retry,
    )


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome is not None else None
    log.info(
        "store_transaction_retried",
        attempt=state.attempt_number,
        error=type(error).__name__,
        sqlstate=getattr(getattr(error, "orig", None), "sqlstate", None),
        wait=round(state.upcoming_sleep, 4),
    )
