"""Choose a storage from a database URL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import platformdirs

from conveyor.errors import InvalidInput
from conveyor.storage.base import Storage


def default_sqlite_path() -> Path:
    """The embedded default: a file in the per-user data directory."""
    return Path(platformdirs.user_data_dir("conveyor")) / "conveyor.db"


def default_database_url() -> str:
    """`sqlite:///` URL of the embedded default file."""
    return f"sqlite:///{default_sqlite_path()}"


def _scheme(url: str) -> str:
    """A database URL's scheme, lower-cased; "" for a bare file path."""
    return url.split(":", 1)[0].lower() if "://" in url else ""


def is_postgres_url(url: str | None) -> bool:
    """Whether `url` names a PostgreSQL database (None, a path or sqlite:/// do not)."""
    return url is not None and _scheme(url) in ("postgres", "postgresql")


def storage_from_url(url: str | None) -> Storage:
    """`sqlite:///file.db` (relative to the working directory), `sqlite:////abs/file.db`
    (absolute, SQLAlchemy's convention; `?synchronous=full` for power-loss durability),
    `postgresql://user@host/db`, or a bare file path; None is the embedded default."""
    url = url or default_database_url()
    scheme = _scheme(url)
    if is_postgres_url(url):
        from conveyor.storage.postgres.postgres_storage import PostgresStorage

        return PostgresStorage(url)
    if scheme == "sqlite":
        parts = urlsplit(url)
        # sqlite://rel/path.db puts a host part first; otherwise the third slash ends the
        # empty host: sqlite:///rel.db is relative, sqlite:////abs.db absolute (SQLAlchemy).
        path = parts.netloc + parts.path if parts.netloc else parts.path[1:]
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if not path:
            raise InvalidInput(f"The SQLite URL {url!r} names no file.")
        from conveyor.storage.sqlite.sqlite_storage import SqliteStorage

        return SqliteStorage(path, synchronous=options.get("synchronous", "normal"))
    if scheme:
        raise InvalidInput(f"Unknown database URL scheme {scheme!r}: use sqlite:/// or "
                           "postgresql://.")
    from conveyor.storage.sqlite.sqlite_storage import SqliteStorage

    return SqliteStorage(url)
