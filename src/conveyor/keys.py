"""API keys: who may do what to which queues. Pure data, parsing and hashing.

A key is a bearer token (`cvk_` + 43 url-safe characters, 256 random bits) shown once when
it is made. On the SQS endpoint the same key signs SigV4 requests: the access key id is
the key's id, the secret access key its token. Bearer tokens are looked up by their
SHA-256; the token itself is kept too, since SigV4 cannot be checked without the
secret. Each key holds grants: actions
(`send`, `receive`, `manage`) on queue names matching a pattern (`*` and `?` wildcards,
as in shell globs). `send,receive:orders-*` lets a key send to and receive from every
queue whose name starts with `orders-`; a grant without a pattern covers every queue.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import orjson

from conveyor.errors import InvalidInput

Action = Literal["send", "receive", "manage"]
ACTIONS: tuple[Action, ...] = ("send", "receive", "manage")
TOKEN_PREFIX = "cvk_"
_PATTERN = re.compile(r"[A-Za-z0-9_.*?-]{1,85}")
_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,100}")
_ACCESS_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_SECRET = re.compile(r"[\x21-\x7e]{16,256}")  # printable ASCII, no spaces


@dataclass(frozen=True, slots=True)
class Grant:
    """Some actions on the queues whose names match a pattern."""

    actions: frozenset[Action]
    pattern: str = "*"

    def allows(self, action: Action, queue: str | None) -> bool:
        """True when this grant covers `action` on `queue` (None: on some queue)."""
        if action not in self.actions:
            return False
        return queue is None or fnmatch.fnmatchcase(queue, self.pattern)

    def covers_prefix(self, prefix: str) -> bool:
        """True when the pattern matches every queue name that starts with `prefix`."""
        # Not `fnmatchcase(prefix + "*", pattern)`: that reads the `*` as a character,
        # which `?` matches, though `notify-?` covers one-character suffixes only. A
        # pattern ending in `*` is a head then any text: it covers `prefix` + anything
        # exactly when the head matches some beginning of `prefix` (the rest, and what
        # follows, go to the `*`). A pattern ending otherwise is taken not to: wrongly so
        # only for oddities such as `*?` (any nonempty name), which no grant needs.
        head = self.pattern.rstrip("*")
        if head == self.pattern:
            return False
        return any(fnmatch.fnmatchcase(prefix[:end], head) for end in range(len(prefix) + 1))

    def __str__(self) -> str:
        actions = ",".join(a for a in ACTIONS if a in self.actions)
        return actions if self.pattern == "*" else f"{actions}:{self.pattern}"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key (never its token)."""

    id: str
    name: str
    grants: tuple[Grant, ...]
    created_at: int
    revoked_at: int | None = None

    def allows(self, action: Action, queue: str | None = None) -> bool:
        """True when some grant covers `action` on `queue` (None: on some queue)."""
        return any(g.allows(action, queue) for g in self.grants)

    def allows_any(self, queue: str | None = None) -> bool:
        """True when the key may do anything at all with `queue`."""
        return any(self.allows(a, queue) for a in ACTIONS)

    def allows_every(self, action: Action) -> bool:
        """True when some grant covers `action` on every queue (its pattern is all `*`)."""
        # Not `allows(action, "*")`: fnmatch would take the `*` as a name, which `?`
        # matches too, though `send:?` covers only one-character names.
        return self.allows_prefix(action, "")

    def allows_prefix(self, action: Action, prefix: str) -> bool:
        """True when some grant covers `action` on every queue whose name starts with
        `prefix` (`""`: as `allows_every`)."""
        return any(action in g.actions and g.covers_prefix(prefix) for g in self.grants)


def parse_grant(text: str) -> Grant:
    """`send,receive:orders-*` -> Grant; InvalidInput with a sentence when malformed."""
    actions_text, _, pattern = text.strip().partition(":")
    pattern = pattern.strip() or "*"
    actions = {a.strip() for a in actions_text.split(",") if a.strip()}
    unknown = actions - set(ACTIONS)
    if not actions or unknown:
        raise InvalidInput(f"Grant {text!r}: actions are a comma list of "
                           f"{', '.join(ACTIONS)} (then optionally ':PATTERN').",
                           field="allow")
    if not _PATTERN.fullmatch(pattern):
        raise InvalidInput(f"Grant {text!r}: the pattern may hold queue-name characters "
                           "and the wildcards * and ?.", field="allow")
    return Grant(frozenset(actions), pattern)  # type: ignore[arg-type]


def parse_grants(texts: Iterable[str]) -> tuple[Grant, ...]:
    """Several grants; at least one."""
    grants = tuple(parse_grant(t) for t in texts)
    if not grants:
        raise InvalidInput("A key needs at least one grant (--allow).", field="allow")
    return grants


def check_key_name(name: str) -> str:
    """Key names: 1-100 letters, digits, '_', '-', '.', '@'."""
    if not _NAME.fullmatch(name):
        raise InvalidInput(f"Key name {name[:100]!r} is invalid: use 1-100 letters, digits, "
                           "'_', '-', '.' or '@'.", field="name")
    return name


def check_access_key_id(key_id: str) -> str:
    """An imported access key id: 1-128 letters, digits, '_', '-', '.'."""
    if not _ACCESS_KEY_ID.fullmatch(key_id):
        raise InvalidInput(f"Access key id {key_id[:128]!r} is invalid: use 1-128 letters, "
                           "digits, '_', '-' or '.'.", field="access_key_id")
    return key_id


def check_secret(secret: str) -> str:
    """An imported secret: 16-256 printable ASCII characters without spaces."""
    if not _SECRET.fullmatch(secret):
        raise InvalidInput("A secret is 16-256 printable ASCII characters without spaces.",
                           field="secret")
    return secret


def new_token() -> str:
    """A fresh bearer token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What the database keeps of a token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def grants_to_json(grants: Sequence[Grant]) -> str:
    """Stored form: `[{"actions": [...], "pattern": "..."}]`."""
    return orjson.dumps([{"actions": sorted(g.actions), "pattern": g.pattern}
                         for g in grants]).decode()


def grants_from_json(text: str) -> tuple[Grant, ...]:
    """Inverse of `grants_to_json`."""
    return tuple(Grant(frozenset(g["actions"]), g["pattern"]) for g in orjson.loads(text))


def key_from_row(row: Sequence[object]) -> ApiKey:
    """(id, name, grants json, created_at, revoked_at) -> ApiKey."""
    revoked = row[4]
    return ApiKey(str(row[0]), str(row[1]), grants_from_json(str(row[2])),
                  int(row[3]), None if revoked is None else int(revoked))  # type: ignore[call-overload]
