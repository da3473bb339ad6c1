"""The two JSON Web Token signatures the mobile channels need (RFC 7515/7518), with
`cryptography` alone: RS256 (a Google service account's assertion for an OAuth2 access
token) and ES256 (an APNs provider token). Signing happens once per token lifetime, so
speed is beside the point; verifying is for the local protocol peers.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import orjson

# cryptography is imported where it is used: `import conveyor.notify` stays cheap for a
# process that runs no mobile channel.

__all__ = ["b64url", "b64url_decode", "decode", "load_private_key", "sign", "verify"]


def b64url(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """The bytes of unpadded base64url text."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_private_key(pem: str | bytes) -> Any:
    """An RSA or EC private key from PEM (a service account's `private_key`, an APNs .p8)."""
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem,
                                              password=None)


def sign(claims: Mapping[str, Any], key: Any, headers: Mapping[str, Any] | None = None
         ) -> str:
    """A compact JWT: RS256 for an RSA key, ES256 for a P-256 key."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    alg = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    head = b64url(orjson.dumps({"alg": alg, "typ": "JWT", **(headers or {})}))
    signing_input = f"{head}.{b64url(orjson.dumps(dict(claims)))}".encode()
    if alg == "RS256":
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JWS: raw r || s
    return f"{signing_input.decode()}.{b64url(signature)}"


def decode(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a JWT without checking it; ValueError when malformed."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("a JWT has three parts")
    try:
        header, claims = orjson.loads(b64url_decode(parts[0])), orjson.loads(
            b64url_decode(parts[1]))
    except (orjson.JSONDecodeError, ValueError) as exc:
        raise ValueError(f"a JWT part is not base64url JSON: {exc}") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("a JWT header and claims are objects")
    return header, claims


def verify(token: str, public_key: Any) -> dict[str, Any]:
    """The claims of a JWT whose signature `public_key` verifies (the algorithm must match
    the key's type); ValueError otherwise. Times and audiences are the caller's to check."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    header, claims = decode(token)
    head, body, sig = token.split(".")
    signing_input = f"{head}.{body}".encode()
    signature = b64url_decode(sig)
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            if header.get("alg") != "RS256":
                raise ValueError("expected RS256")
            public_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        else:
            if header.get("alg") != "ES256" or len(signature) != 64:
                raise ValueError("expected ES256")
            der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                       int.from_bytes(signature[32:], "big"))
            public_key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ValueError("bad signature") from None
    return claims
