"""Recipients: a person's time zone, locale, addresses per channel, preferences and quiet
hours, as values; the one parser of their JSON form; and the quiet-hour arithmetic.

Pure data and pure functions, like `conveyor.ledger`: the broker validates with
`parse_recipient`, the storage dialects store `recipient_json` and read back with
`parse_recipient`, and the notifier asks `quiet_release_at` whether to hold a message.

Preferences are opt-out by default: a channel is allowed for a category unless the
recipient set `preferences[category][channel]` to false. An opt-in category allows only
the channels set to true; a critical category ignores preferences and quiet hours.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from conveyor.errors import InvalidInput

__all__ = ["ADDRESS_CHANNELS", "ADDRESS_SHAPES", "CSV_COLUMNS", "Category", "QuietHours",
           "Recipient", "address_key", "address_shaped", "allowed", "check_id", "parse_line",
           "parse_recipient", "quiet_release_at", "recipient_json"]

ADDRESS_CHANNELS = ("email", "push", "fcm", "apns")
"""Channels a recipient can hold addresses for: email addresses, Web Push subscriptions
(`{"endpoint", "keys": {"p256dh", "auth"}}`), FCM and APNs device tokens."""

MAX_ID = 200
MAX_ADDRESSES = 20
MAX_ADDRESS = 2048
MAX_NAME = 100
_ID = re.compile(r"[A-Za-z0-9_.:@+-]{1,200}")
_LOCALE = re.compile(r"[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*")
_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_FIELDS = frozenset({"timezone", "locale", "addresses", "preferences", "quiet_hours"})
_FCM_TOKEN = re.compile(r"[A-Za-z0-9_:.-]+")  # registration tokens: base64url plus ':', '.'
_APNS_TOKEN = re.compile(r"(?:[0-9A-Fa-f]{2}){16,100}")  # 16 to 100 bytes (32 today), hex
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")
ADDRESS_SHAPES = {
    "email": "an email address",
    "push": "a Web Push subscription endpoint, an https:// URL with a host",
    "fcm": "an FCM registration token (letters, digits, '-', '_', ':' and '.')",
    "apns": "an APNs device token (32 to 200 hex digits, an even number)",
    "webhook": "an http:// or https:// URL with a host",
}
"""What an address on each channel must be (`address_shaped`); other channels (apprise,
an application's own) take any one line of text."""


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window in the recipient's own time zone, `start` inclusive, `end`
    exclusive; it crosses midnight when `start` > `end` (22:00 to 07:00)."""

    start: time
    end: time

    def to_json(self) -> dict[str, str]:
        """`{"start": "HH:MM", "end": "HH:MM"}`."""
        return {"start": self.start.strftime("%H:%M"), "end": self.end.strftime("%H:%M")}

    def contains(self, wall: time) -> bool:
        """Whether a local wall-clock time falls inside the window."""
        if self.start < self.end:
            return self.start <= wall < self.end
        return wall >= self.start or wall < self.end


@dataclass(frozen=True, slots=True)
class Recipient:
    """A person conveyor notifies (see the module docstring)."""

    id: str
    timezone: str = "UTC"
    locale: str = "en"
    addresses: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    """Per channel, its addresses: strings, or subscription objects for `push`."""
    preferences: Mapping[str, Mapping[str, bool]] = field(default_factory=dict)
    """Per category, per channel: False opts out, True opts in."""
    quiet_hours: QuietHours | None = None
    updated_at: int = 0

    @property
    def zone(self) -> ZoneInfo:
        """The time zone (validated when the recipient was parsed)."""
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class Category:
    """What kind of notification this is: `opt_in` categories reach only channels the
    recipient turned on; `critical` ones (a password reset, a security alert) go to every
    channel, inside quiet hours too."""

    name: str
    critical: bool = False
    opt_in: bool = False


def allowed(recipient: Recipient, category: Category, channel: str) -> bool:
    """Whether the recipient's preferences let `category` use `channel`."""
    if category.critical:
        return True
    choice = recipient.preferences.get(category.name, {}).get(channel)
    return choice is True if category.opt_in else choice is not False


# parsing ------------------------------------------------------------------------------
def parse_recipient(recipient_id: Any, doc: Any, updated_at: int = 0, *,
                    stored: bool = False) -> Recipient:
    """A recipient from its JSON form (the body of `PUT /v1/recipients/{id}`); raises
    `InvalidInput` naming the field. Missing fields take their defaults.

    `stored`: read back from storage, where each address was checked when written; the
    shapes of `address_shaped` are not asked again (they grew stricter since: a person
    stored before must still read, and a `PUT` puts the addresses right)."""
    check_id(recipient_id)
    if not isinstance(doc, Mapping):
        raise InvalidInput("A recipient is a JSON object.", field="recipient")
    unknown = sorted(set(doc) - _FIELDS - {"id"})
    if unknown:
        raise InvalidInput(f"Unknown recipient field {unknown[0]!r}; the fields are "
                           f"{', '.join(sorted(_FIELDS))}.", field=str(unknown[0]))
    timezone = doc.get("timezone", "UTC")
    _zone(timezone)
    locale = doc.get("locale", "en")
    if not isinstance(locale, str) or not _LOCALE.fullmatch(locale) or len(locale) > 35:
        raise InvalidInput(f"locale must be a language tag such as en or pt-BR, not "
                           f"{locale!r:.40}.", field="locale")
    quiet = doc.get("quiet_hours")
    return Recipient(recipient_id, timezone, locale,
                     _addresses(doc.get("addresses", {}), stored),
                     _preferences(doc.get("preferences", {})),
                     None if quiet is None else _quiet(quiet), updated_at)


def check_id(recipient_id: Any) -> None:
    """Raise `InvalidInput` unless `recipient_id` is a well-formed recipient id."""
    if not isinstance(recipient_id, str) or not _ID.fullmatch(recipient_id):
        raise InvalidInput("A recipient id is 1 to 200 of A-Z a-z 0-9 _ . : @ + -, not "
                           f"{recipient_id!r:.60}.", field="id")


def recipient_json(r: Recipient) -> dict[str, Any]:
    """The JSON form (what `GET /v1/recipients/{id}` answers, and what is stored)."""
    return {"id": r.id, "timezone": r.timezone, "locale": r.locale,
            "addresses": {ch: list(a) for ch, a in r.addresses.items()},
            "preferences": {c: dict(p) for c, p in r.preferences.items()},
            "quiet_hours": None if r.quiet_hours is None else r.quiet_hours.to_json(),
            "updated_at": r.updated_at}


def _zone(name: Any) -> ZoneInfo:
    if not isinstance(name, str) or not 1 <= len(name) <= 64 or name.startswith(("/", ".")) \
            or ".." in name:
        raise InvalidInput(f"timezone must be an IANA zone name such as Europe/Berlin, not "
                           f"{name!r:.60}.", field="timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(f"Unknown time zone {name!r}: use an IANA name such as "
                           "Europe/Berlin or America/New_York.", field="timezone") from None


def _addresses(value: Any, stored: bool) -> dict[str, tuple[Any, ...]]:
    if not isinstance(value, Mapping):
        raise InvalidInput("addresses must be an object of channel: [address, ...].",
                           field="addresses")
    out: dict[str, tuple[Any, ...]] = {}
    for channel, items in value.items():
        if channel not in ADDRESS_CHANNELS:
            raise InvalidInput(f"No address channel {channel!r}; the channels are "
                               f"{', '.join(ADDRESS_CHANNELS)}.", field="addresses")
        if isinstance(items, str | Mapping):
            items = [items]
        if not isinstance(items, list) or len(items) > MAX_ADDRESSES:
            raise InvalidInput(f"addresses.{channel} must be a list of at most "
                               f"{MAX_ADDRESSES} addresses.", field="addresses")
        checked = tuple(_address(channel, a, stored) for a in items)
        if len({_key(channel, a) for a in checked}) != len(checked):
            raise InvalidInput(f"addresses.{channel} repeats an address.", field="addresses")
        if checked:
            out[channel] = checked
    return out


def _address(channel: str, a: Any, stored: bool) -> Any:
    if channel == "push":
        keys = a.get("keys") if isinstance(a, Mapping) else None
        if not isinstance(keys, Mapping) or not _short(a.get("endpoint")) or \
                not (stored or address_shaped("push", a["endpoint"])) or \
                not _short(keys.get("p256dh")) or not _short(keys.get("auth")):
            raise InvalidInput("A push address is a Web Push subscription: {\"endpoint\": "
                               "\"https://host/...\", \"keys\": {\"p256dh\", \"auth\"}}.",
                               field="addresses")
        return {"endpoint": a["endpoint"], "keys": {"p256dh": keys["p256dh"],
                                                    "auth": keys["auth"]}}
    if not _short(a) or not (stored or address_shaped(channel, a)):
        raise InvalidInput(f"addresses.{channel} holds {ADDRESS_SHAPES[channel]} per item, "
                           f"not {a!r:.60}.", field="addresses")
    return a


def address_shaped(channel: str, address: str) -> bool:
    """Whether `address` has the shape of an address on `channel` (`ADDRESS_SHAPES`; for
    push, a subscription's endpoint): the one rule for a recipient's addresses and for
    the suppression list (`conveyor.broker.channels.check_address`). Other channels take
    any text."""
    if channel not in ADDRESS_SHAPES:
        return True
    if _SPACE_OR_CONTROL.search(address):
        return False
    if channel == "email":
        return _email(address)
    if channel == "fcm":
        return _FCM_TOKEN.fullmatch(address) is not None
    if channel == "apns":
        return _APNS_TOKEN.fullmatch(address) is not None
    return _url(address, ("https",) if channel == "push" else ("http", "https"))


def _url(text: str, schemes: tuple[str, ...]) -> bool:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 -- a port that is no number raises here
    except ValueError:
        return False
    return parts.scheme in schemes and bool(parts.hostname)


def _short(v: Any) -> bool:
    return isinstance(v, str) and 1 <= len(v) <= MAX_ADDRESS and v.strip() == v


def _email(a: str) -> bool:
    local, at, domain = a.rpartition("@")
    return bool(at and local and domain and "." in domain and " " not in a)


def _key(channel: str, a: Any) -> str:
    """What makes two addresses the same (a subscription: its endpoint)."""
    return str(a["endpoint"]) if channel == "push" else str(a)


def address_key(channel: str, a: Any) -> str:
    """The address as the ledger and the suppression list know it (push: the endpoint)."""
    return _key(channel, a)


def _preferences(value: Any) -> dict[str, dict[str, bool]]:
    if not isinstance(value, Mapping):
        raise InvalidInput("preferences must be an object of category: {channel: bool}.",
                           field="preferences")
    out: dict[str, dict[str, bool]] = {}
    for category, choices in value.items():
        if not isinstance(category, str) or not 1 <= len(category) <= MAX_NAME:
            raise InvalidInput("A preference category is a name of 1 to 100 characters.",
                               field="preferences")
        if not isinstance(choices, Mapping) or not all(
                ch in ADDRESS_CHANNELS and isinstance(on, bool) for ch, on in choices.items()):
            raise InvalidInput(f"preferences.{category} must map channels "
                               f"({', '.join(ADDRESS_CHANNELS)}) to true or false.",
                               field="preferences")
        out[category] = dict(choices)
    return out


def _quiet(value: Any) -> QuietHours:
    bad = InvalidInput('quiet_hours must be {"start": "HH:MM", "end": "HH:MM"} (24-hour, '
                       "local time; a different start and end), or null.",
                       field="quiet_hours")
    if not isinstance(value, Mapping) or set(value) != {"start", "end"}:
        raise bad
    times = []
    for part in (value["start"], value["end"]):
        match = _CLOCK.fullmatch(part) if isinstance(part, str) else None
        if match is None:
            raise bad
        times.append(time(int(match.group(1)), int(match.group(2))))
    if times[0] == times[1]:
        raise bad
    return QuietHours(times[0], times[1])


# import lines ---------------------------------------------------------------------------
CSV_COLUMNS = ("id", "timezone", "locale", "email", "push", "fcm", "apns", "preferences",
               "quiet_hours")
"""A CSV import's columns (a header row names them; any may be left out but `id`):
`email`, `fcm`, `apns` hold addresses separated by spaces; `push` and `preferences` JSON;
`quiet_hours` `HH:MM-HH:MM`; empty cells take the defaults."""


def parse_line(line: str | Mapping[str, str], updated_at: int = 0) -> Recipient:
    """One import line: a JSON line (`{"id": ..., "timezone": ..., ...}`, the HTTP body
    plus `id`) or a CSV row (a mapping of `CSV_COLUMNS`)."""
    if isinstance(line, str):
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise InvalidInput(f"Not a JSON object: {exc}.") from None
        if not isinstance(obj, dict):
            raise InvalidInput("A JSON line is one recipient object.")
        return parse_recipient(obj.get("id"), obj, updated_at)
    unknown = sorted(k for k in line if k not in CSV_COLUMNS)
    if unknown:
        raise InvalidInput(f"Unknown column {unknown[0]!r}; the columns are "
                           f"{', '.join(CSV_COLUMNS)}.", field=str(unknown[0]))
    cells = {k: (v or "").strip() for k, v in line.items()}
    doc: dict[str, Any] = {k: cells[k] for k in ("timezone", "locale") if cells.get(k)}
    addresses: dict[str, Any] = {ch: cells[ch].split() for ch in ("email", "fcm", "apns")
                                 if cells.get(ch)}
    try:
        if cells.get("push"):
            addresses["push"] = json.loads(cells["push"])
        if cells.get("preferences"):
            doc["preferences"] = json.loads(cells["preferences"])
    except ValueError:
        raise InvalidInput("push and preferences cells hold JSON.") from None
    if cells.get("quiet_hours"):
        start, _, end = cells["quiet_hours"].partition("-")
        doc["quiet_hours"] = {"start": start.strip(), "end": end.strip()}
    doc["addresses"] = addresses
    return parse_recipient(cells.get("id", ""), doc, updated_at)


# quiet hours ----------------------------------------------------------------------------
def quiet_release_at(quiet: QuietHours, zone: ZoneInfo, now_ms: int) -> int | None:
    """When a message sent at `now_ms` may go out: None when the recipient's wall clock is
    outside the window, else the instant (ms) the window ends.

    The end is the first instant after now at which the local wall clock reads `end` or
    later. So across daylight saving: an `end` skipped by a spring-forward gap ends the
    window at the jump; an `end` that happens twice in an autumn fold ends it at the next
    of the two (the first, unless now is already in the repeated hour).
    """
    now = datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(zone)
    wall = now.time().replace(tzinfo=None)
    if not quiet.contains(wall):
        return None
    day = now.date() if wall < quiet.end else now.date() + timedelta(days=1)
    target = datetime.combine(day, quiet.end)
    for fold in (0, 1):  # fold 0: the earlier of two instants with this wall time
        candidate = target.replace(tzinfo=zone, fold=fold)
        at = candidate.astimezone(UTC)
        exists = at.astimezone(zone).replace(tzinfo=None) == target
        if exists and at > now:
            return _ms(at)
    # In a gap (the wall clock jumps over `end`): the window ends at the jump, the first
    # instant whose wall time is past `end`. Gaps are whole minutes; bisect the seconds
    # between the two readings of `target` (before-gap and after-gap offsets).
    low = _ms(target.replace(tzinfo=zone, fold=1).astimezone(UTC)) // 1000
    high = _ms(target.replace(tzinfo=zone, fold=0).astimezone(UTC)) // 1000
    low, high = min(low, high), max(low, high)
    while low < high:
        mid = (low + high) // 2
        if datetime.fromtimestamp(mid, UTC).astimezone(zone).replace(tzinfo=None) >= target:
            high = mid
        else:
            low = mid + 1
    return max(high * 1000, now_ms)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)
