"""Error answers of the server as the same `conveyor.errors` classes the broker raises.

The server's `{"error": {"code", "message", "field"?, "index"?}}` names the class by its
`code`; a code this client does not know falls back by status code.
"""

from __future__ import annotations

from typing import Any

from conveyor import errors as e
from conveyor.errors import ServerUnavailable

__all__ = ["ServerUnavailable", "error_from"]


def _classes(root: type[e.ConveyorError]) -> dict[str, type[e.ConveyorError]]:
    found = {root.code: root}
    for sub in root.__subclasses__():
        found.update(_classes(sub))
    return found


_BY_STATUS: dict[int, type[e.ConveyorError]] = {
    400: e.InvalidInput, 413: e.InvalidInput, 422: e.InvalidInput, 404: e.Unsupported,
    409: e.Conflict, 429: e.OverLimit, 503: e.StorageUnavailable,
}


def error_from(status: int, data: Any) -> e.ConveyorError:
    """The exception for an error answer."""
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return _BY_STATUS.get(status, e.StorageError)(f"The server answered {status}.")
    code = str(error.get("code", ""))
    message = str(error.get("message") or f"The server answered {status}.")
    cls = _classes(e.ConveyorError).get(code) or _BY_STATUS.get(status, e.StorageError)
    if issubclass(cls, e.InvalidInput):
        return cls(message, field=error.get("field"), index=error.get("index"))
    exc = cls(message)
    if cls.code != code and code:
        exc.code = code  # keep the server's own code on the fallback class
    return exc
