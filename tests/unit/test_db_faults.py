"""The driver's own errors (the read model's look-ups run on asyncpg directly) are translated
like SQLAlchemy's: transient ones become ``Unavailable``, the rest stay bugs."""

from __future__ import annotations

import asyncpg

from domain.errors import Unavailable
from infrastructure.db.faults import as_unavailable


def test_a_transient_driver_error_is_unavailable() -> None:
    for error in (asyncpg.exceptions.AdminShutdownError("terminating"), asyncpg.exceptions.ConnectionDoesNotExistError("gone"),
                  asyncpg.exceptions.DeadlockDetectedError("deadlock")):
        assert isinstance(as_unavailable(error), Unavailable), error


def test_other_driver_errors_are_not() -> None:
    assert as_unavailable(asyncpg.exceptions.UndefinedColumnError("no such column")) is None
    assert as_unavailable(ValueError("x")) is None
