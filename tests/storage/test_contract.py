"""The contract and its suite stay together: every method of `storage.base.Storage` is
called somewhere in tests/storage, and both drivers implement every one of them with the
protocol's parameters."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from conveyor.storage.base import Storage
from conveyor.storage.postgres.postgres_storage import PostgresStorage
from conveyor.storage.sqlite.sqlite_storage import SqliteStorage

HERE = Path(__file__).parent
METHODS = sorted(name for name, member in inspect.getmembers(Storage)
                 if inspect.isfunction(member) and not name.startswith("_"))


def test_every_method_is_exercised_here() -> None:
    text = "\n".join(p.read_text() for p in HERE.glob("*.py") if p.name != Path(__file__).name)
    missing = [name for name in METHODS if f".{name}(" not in text]
    assert not missing, f"no conformance test calls {missing}: add one to tests/storage"


@pytest.mark.parametrize("driver", [SqliteStorage, PostgresStorage])
def test_drivers_implement_the_protocol(driver: type) -> None:
    for name in METHODS:
        wanted = list(inspect.signature(getattr(Storage, name)).parameters)
        got = list(inspect.signature(getattr(driver, name)).parameters)
        assert got == wanted, (driver.__name__, name)


def test_storage_module_names_are_unique() -> None:
    """A dialect's modules are named after the dialect (sqlite_jobs.py, postgres_jobs.py),
    so an import, a traceback or a drawing of the imports names one module."""
    root = Path(inspect.getfile(Storage)).parent
    seen: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        assert path.name not in seen, (
            f"{path.relative_to(root)} and {seen[path.name].relative_to(root)}: name a "
            "dialect's module after the dialect (sqlite_x.py, postgres_x.py)")
        seen[path.name] = path
