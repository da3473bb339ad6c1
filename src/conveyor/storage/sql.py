"""Named SQL blocks, loaded once per dialect from `queries.sql` (and other `.sql` files such
as `jobs.sql`) and `migrations/`."""

from __future__ import annotations

import re
from importlib import resources

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def load_queries(package: str, filename: str = "queries.sql") -> dict[str, str]:
    """Every `-- name: x` block of one of a dialect's .sql files, by name."""
    text = resources.files(package).joinpath(filename).read_text()
    parts = _NAME.split(text)
    queries = {name: body.strip() for name, body in zip(parts[1::2], parts[2::2])}
    if len(queries) != len(parts) // 2:
        raise RuntimeError(f"duplicate query names in {package}/{filename}")
    return queries


def load_migrations(package: str) -> list[tuple[int, str]]:
    """Numbered migrations (`0001_name.sql`), in order."""
    folder = resources.files(package).joinpath("migrations")
    found = []
    for item in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_\w+\.sql", item.name)
        if match:
            found.append((int(match.group(1)), item.read_text()))
    found.sort()
    if [n for n, _ in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations of {package} are not numbered 1..n")
    return found
