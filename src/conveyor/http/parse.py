"""Fast request parsing for the send route, where a request holds up to 1,000 messages.

Pydantic validation costs more than the database insert at that size, so the send route
reads its body with orjson and checks the shape here; ranges and rules stay the broker's.
The pydantic models in `schemas.py` still document the body in `/openapi.json`, and errors
have the same codes as the pydantic-validated routes.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from conveyor.errors import InvalidInput, InvalidMessage, MissingParameter
from conveyor.models import Body, BodyKind, Claim, MessageAttribute, SendEntry

# orjson turns integers beyond 64 bits into floats; a body must come back exactly as sent,
# so requests with a run of 20 digits take the (exact, slower) standard library parser.
# Mapping digits to "0" and looking for twenty of them is ten times faster than a regex.
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_RUN = b"0" * 20
_SEND_FIELDS = frozenset({"body", "delay_seconds", "attributes", "priority",
                          "deduplication_id", "group_id", "claim"})


class MalformedJson(InvalidInput):
    """The request body is not valid JSON."""

    code = "malformed_json"


def loads(raw: bytes) -> Any:
    """Decode a JSON request body exactly (MalformedJson when it is not JSON)."""
    if _LONG_RUN not in raw.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # let the standard library decide, and word the error
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:
        raise MalformedJson(f"The request body is not valid JSON: {exc}.") from None


def check_body(raw: bytes) -> None:
    """Refuse a JSON body that the standard library would decode but storage cannot keep:
    a lone surrogate (`\\ud800`), a NUL character (PostgreSQL's text and jsonb refuse
    it; SQLite would keep it, so both refuse it here alike), NaN or a number out of float
    range (MalformedJson or InvalidInput), for routes whose bodies pydantic decodes.
    Fast: one orjson pass, and a walk of the strings only when one may hold NUL."""
    if not raw:
        return
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        # big integers are fine; the standard library words everything else
        value = loads(raw)
        if _has_text(value, _is_surrogate):
            raise InvalidInput("Text in the request body must be valid Unicode: a lone "
                               "surrogate (such as \\ud800) is not allowed.") from None
    if b"\\u0000" in raw and _has_text(value, _is_nul):
        raise InvalidInput("Text in the request body must not contain a NUL character "
                           "(\\u0000).")


def _is_surrogate(text: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in text)


def _is_nul(text: str) -> bool:
    return "\x00" in text


def _has_text(value: Any, bad: Callable[[str], bool]) -> bool:
    """Whether any string in a decoded JSON value (keys included) is `bad`."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if bad(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    # 1e400 parses as infinity, which JSON cannot carry: it would be stored as null.
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def send_entries(data: Any) -> list[SendEntry]:
    """`{"messages": [...]}` as SendEntry values, or InvalidInput naming the bad index."""
    if not isinstance(data, dict):
        raise InvalidInput("The request body must be a JSON object.")
    if "messages" not in data:
        raise MissingParameter("messages is required.", field="messages")
    if len(data) > 1:
        unknown = next(k for k in data if k != "messages")
        raise InvalidInput(f"Unknown field {unknown[:100]!r}.", field=unknown[:100])
    messages = data["messages"]
    if not isinstance(messages, list):
        raise InvalidInput("messages must be a list.", field="messages")
    entries: list[SendEntry] = []
    append = entries.append
    text, as_json = BodyKind.TEXT, BodyKind.JSON
    for index, m in enumerate(messages):
        if type(m) is not dict:
            raise InvalidInput(f"messages.{index} must be an object.", index=index,
                               field="messages")
        if "body" not in m:
            raise MissingParameter(f"messages.{index}.body is required.", index=index,
                                   field="body")
        body = m["body"]
        if len(m) == 1:  # the common case: a body and nothing else
            append(SendEntry(Body(body, text) if type(body) is str
                             else Body(_dumps(body), as_json)))
            continue
        if not m.keys() <= _SEND_FIELDS:
            unknown = next(k for k in m if k not in _SEND_FIELDS)
            raise InvalidInput(f"Unknown message field {unknown[:100]!r}.", index=index,
                               field=unknown[:100])
        attributes = m.get("attributes")
        append(SendEntry(
            body=Body(body, text) if type(body) is str else Body(_dumps(body), as_json),
            delay_seconds=m.get("delay_seconds"),
            attributes={} if attributes is None else attributes_in(attributes, index),
            priority=m.get("priority", 0),
            deduplication_id=m.get("deduplication_id"),
            group_id=m.get("group_id"),
            claim=None if m.get("claim") is None else claim_in(m["claim"], index),
        ))
    return entries


def claim_in(value: Any, index: int) -> Claim:
    """A wire claim (`{"key", "seconds", "replace"}`) as a Claim; ranges are the broker's."""
    if type(value) is not dict or not value.keys() <= {"key", "seconds", "replace"} \
            or "key" not in value or "seconds" not in value:
        raise InvalidMessage("claim must be an object with key, seconds and optionally "
                             "replace.", index=index, field="claim")
    return Claim(value["key"], value["seconds"], value.get("replace", False))


def _dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # an integer beyond 64 bits
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def attributes_in(attributes: Any, index: int) -> dict[str, MessageAttribute]:
    """Wire attributes (`{"name": {"type", "value"}}`, Binary as base64) as MessageAttribute."""
    if not isinstance(attributes, Mapping):
        raise InvalidMessage("attributes must be an object.", index=index, field="attributes")
    out: dict[str, MessageAttribute] = {}
    for name, attribute in attributes.items():
        shown = name[:100]
        if not isinstance(attribute, Mapping) or not isinstance(attribute.get("type"), str) \
                or "value" not in attribute:
            raise InvalidMessage(f"Message attribute {shown!r} must be an object with a type "
                                 "and a value.", index=index, field="attributes")
        kind: str = attribute["type"]
        value = attribute["value"]
        base = kind.split(".", 1)[0]
        if base == "Binary":
            if not isinstance(value, str):
                raise InvalidMessage(f"Message attribute {shown!r} must be base64 text.",
                                     index=index, field="attributes")
            try:
                out[name] = MessageAttribute(kind, base64.b64decode(value, validate=True))
            except (binascii.Error, ValueError):
                raise InvalidMessage(f"Message attribute {shown!r} is not valid base64.",
                                     index=index, field="attributes") from None
        elif isinstance(value, str):
            out[name] = MessageAttribute(kind, value)
        elif base == "Number" and isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = MessageAttribute(kind, repr(value))
        else:
            raise InvalidMessage(f"Message attribute {shown!r} must be a string.",
                                 index=index, field="attributes")
    return out
