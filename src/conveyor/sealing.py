"""Sealing the API keys' secrets at rest with a key the database never holds.

The SQS endpoint needs each key's secret to check SigV4 signatures (an HMAC: no hash will
do), so the keys table keeps it. With `CONVEYOR_KEYS_SECRET` set (on `serve` and on
`keys create` alike), it keeps it sealed instead: AES-256-GCM under a key derived from
that value, with the key's id as associated data (a sealed secret moved to another row
does not open). A copy of the database alone (a backup, a replica, a read-only leak) then
holds no usable secret. The value must be long and random (the token hashes in the same
table would let anyone test guesses of a short one): 32 characters or more, e.g.
`python -c "import secrets; print(secrets.token_urlsafe(32))"`.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from conveyor.errors import InvalidInput

PREFIX = "sealed1:"
MIN_LENGTH = 32
_NONCE_BYTES = 12


class Sealer:
    """Seals and opens stored secrets with one server-held value."""

    def __init__(self, value: str) -> None:
        if len(value) < MIN_LENGTH:
            raise InvalidInput(f"CONVEYOR_KEYS_SECRET must be at least {MIN_LENGTH} random "
                               "characters.", field="keys_secret")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"conveyor api keys",
                   info=b"sealed1").derive(value.encode())
        self._aead = AESGCM(key)

    def seal(self, secret: str, key_id: str) -> str:
        """The stored form of `secret` for the key `key_id`."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode(), key_id.encode())
        return PREFIX + base64.b64encode(nonce + sealed).decode()

    def open(self, stored: str, key_id: str) -> str | None:
        """The secret, or None when it was sealed with another value (or is damaged)."""
        try:
            raw = base64.b64decode(stored.removeprefix(PREFIX), validate=True)
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:],
                                      key_id.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError):
            return None


def stored_form(secret: str, key_id: str, sealer: Sealer | None) -> str:
    """What the keys table keeps: the sealed secret, or the secret itself without a sealer."""
    return secret if sealer is None else sealer.seal(secret, key_id)


def open_stored(stored: str | None, key_id: str, sealer: Sealer | None) -> str | None:
    """The usable secret of a stored value; None when there is none or it cannot be
    opened here (sealed, and this server has no or another `CONVEYOR_KEYS_SECRET`)."""
    if stored is None or not stored.startswith(PREFIX):
        return stored
    return None if sealer is None else sealer.open(stored, key_id)


def sealer_from(value: str | None) -> Sealer | None:
    """A Sealer for a configured value (None when unset)."""
    return Sealer(value) if value else None
