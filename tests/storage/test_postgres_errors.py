"""How asyncpg's errors reach a client: a database that cannot answer now is
`storage_unavailable` with a clear sentence (asyncpg's internals only in the server's DEBUG
log); a request the database refuses stays `storage_error`."""

from __future__ import annotations

import asyncpg
import pytest

from conveyor.errors import StorageUnavailable
from conveyor.storage.postgres.postgres_base import LOST_MID_OPERATION, translated


def test_asyncpg_internals_are_not_the_clients_message(caplog: pytest.LogCaptureFixture
                                                       ) -> None:
    caplog.set_level("DEBUG", logger="conveyor.storage.postgres")
    internal = asyncpg.InternalClientError(
        "cannot switch to state 12; another operation (2) is in progress")
    with pytest.raises(StorageUnavailable) as caught, translated():
        raise internal
    assert caught.value.message == LOST_MID_OPERATION
    assert caught.value.code == "storage_unavailable"
    assert "state 12" not in caught.value.message
    assert caught.value.__cause__ is internal  # the detail stays for the server's log
    assert any(r.exc_info and r.exc_info[1] is internal for r in caplog.records)
    with pytest.raises(StorageUnavailable) as busy, translated():
        raise asyncpg.InterfaceError("cannot perform operation: another operation is in "
                                     "progress")
    assert busy.value.message == LOST_MID_OPERATION


@pytest.mark.parametrize("error", [asyncpg.TooManyConnectionsError, asyncpg.CannotConnectNowError,
                                   asyncpg.AdminShutdownError, asyncpg.ConnectionFailureError])
def test_cannot_connect_now_states_are_unavailable(error: type[Exception]) -> None:
    with pytest.raises(StorageUnavailable, match="PostgreSQL is unavailable"), translated():
        raise error("not now")


def test_a_wrong_request_stays_a_storage_error() -> None:
    with pytest.raises(Exception) as caught, translated():
        raise asyncpg.UndefinedTableError("relation does not exist")
    assert not isinstance(caught.value, StorageUnavailable)
    assert getattr(caught.value, "code", None) == "storage_error"
