"""AWS Signature Version 4 verification for the SQS endpoint.

Requests are signed by the SDKs with an access key pair: here an API key's id and token
(`conveyor.sqs.auth` finds the key named by `access_key_of`). The verifier recomputes the
signature: the canonical request (method, path, sorted query, the signed headers, the
payload's SHA-256), the string to sign with the credential scope, and the HMAC chain of
the secret, date, region and service. Both the `Authorization` header and presigned query
strings (`X-Amz-Signature`) are accepted.
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import quote, unquote

from conveyor.sqs.errors import AwsError, SqsError

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_SECONDS = 15 * 60  # AWS allows 15 minutes either way

SIGNATURE_DOES_NOT_MATCH = AwsError("SignatureDoesNotMatch", "SignatureDoesNotMatch", 403)
INVALID_CLIENT_TOKEN_ID = AwsError("InvalidClientTokenId", "InvalidClientTokenId", 403)
REQUEST_EXPIRED = AwsError("RequestExpired", "RequestExpired", 400)
MISSING_TOKEN = AwsError("MissingAuthenticationToken", "MissingAuthenticationToken", 403)
INCOMPLETE_SIGNATURE = AwsError("IncompleteSignature", "IncompleteSignature", 400)

_HEADER = re.compile(r"AWS4-HMAC-SHA256\s+Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),"
                     r"\s*Signature=([0-9a-fA-F]+)\s*$")


def _amz_time(text: str) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(text, "%Y%m%dT%H%M%SZ")))
    except ValueError:
        return None


def _uri_encode(text: str) -> str:
    return quote(text, safe="-_.~")


def canonical_query(query_string: str, *, drop: str | None = None) -> str:
    """Sorted, re-encoded `k=v` pairs of a raw query string."""
    pairs: list[tuple[str, str]] = []
    for part in query_string.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        key, value = unquote(key.replace("+", " ")), unquote(value.replace("+", " "))
        if key != drop:
            pairs.append((_uri_encode(key), _uri_encode(value)))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The HMAC chain: secret -> date -> region -> service -> aws4_request."""
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _payload_hash(lower: Mapping[str, list[str]], body: bytes) -> str:
    """The signed payload hash: as the client declared it (S3-style `UNSIGNED-PAYLOAD`
    too), else the body's SHA-256, which botocore signs for SQS."""
    declared = (lower.get("x-amz-content-sha256") or [""])[0]
    return declared or hashlib.sha256(body).hexdigest()


def _lower(headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    lower: dict[str, list[str]] = {}
    for name, value in headers:
        lower.setdefault(name.lower(), []).append(value)
    return lower


def _query_params(query_string: str) -> dict[str, str]:
    return {k: unquote(v) for k, v in
            (p.partition("=")[::2] for p in query_string.split("&") if p)}


def access_key_of(query_string: str, headers: Iterable[tuple[str, str]]) -> str:
    """The access key id a request is signed with; SqsError when it is not signed."""
    params = _query_params(query_string)
    if "X-Amz-Signature" in params:
        credential = params.get("X-Amz-Credential", "")
    else:
        authorization = (_lower(headers).get("authorization") or [""])[0]
        if not authorization:
            raise SqsError(MISSING_TOKEN, "Request is missing Authentication Token.")
        match = _HEADER.match(authorization.strip())
        if match is None:
            raise SqsError(INCOMPLETE_SIGNATURE, "The Authorization header is not a valid "
                           f"{ALGORITHM} signature.")
        credential = match.group(1)
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not parts[0]:
        raise SqsError(INCOMPLETE_SIGNATURE, "The credential scope is malformed.")
    return parts[0]


class SigV4Verifier:
    """Checks one request's signature against known key pairs ({access key id: secret})."""

    def __init__(self, credentials: Mapping[str, str], *,
                 clock: Callable[[], float] = time.time) -> None:
        self.credentials = dict(credentials)
        self.clock = clock

    def verify(self, method: str, path: str, query_string: str,
               headers: Iterable[tuple[str, str]], body: bytes) -> str:
        """The access key id when the request is signed by a known pair; else SqsError."""
        lower = _lower(headers)
        params = _query_params(query_string)
        if "X-Amz-Signature" in params:
            return self._verify_presigned(method, path, query_string, lower, params, body)
        authorization = (lower.get("authorization") or [""])[0]
        if not authorization:
            raise SqsError(MISSING_TOKEN, "Request is missing Authentication Token.")
        match = _HEADER.match(authorization.strip())
        if match is None:
            raise SqsError(INCOMPLETE_SIGNATURE, "The Authorization header is not a valid "
                           f"{ALGORITHM} signature.")
        credential, signed, signature = match.groups()
        stamp = (lower.get("x-amz-date") or [""])[0]
        return self._check(method, path, canonical_query(query_string), lower, credential,
                           signed, signature, stamp, _payload_hash(lower, body),
                           expires=None)

    def _verify_presigned(self, method: str, path: str, query_string: str,
                          lower: Mapping[str, list[str]], params: Mapping[str, str],
                          body: bytes) -> str:
        if params.get("X-Amz-Algorithm") != ALGORITHM:
            raise SqsError(INCOMPLETE_SIGNATURE, f"X-Amz-Algorithm must be {ALGORITHM}.")
        try:
            expires: int | None = int(params.get("X-Amz-Expires", "900"))
        except ValueError:
            raise SqsError(INCOMPLETE_SIGNATURE, "X-Amz-Expires is not a number.") from None
        return self._check(method, path, canonical_query(query_string,
                                                         drop="X-Amz-Signature"),
                           lower, params.get("X-Amz-Credential", ""),
                           params.get("X-Amz-SignedHeaders", ""), params["X-Amz-Signature"],
                           params.get("X-Amz-Date", ""), _payload_hash(lower, body),
                           expires=expires)

    def _check(self, method: str, path: str, query: str, lower: Mapping[str, list[str]],
               credential: str, signed: str, signature: str, stamp: str, payload: str,
               expires: int | None) -> str:
        parts = credential.split("/")
        if len(parts) != 5 or parts[4] != "aws4_request":
            raise SqsError(INCOMPLETE_SIGNATURE, "The credential scope is malformed.")
        access_key, date, region, service, _ = parts
        secret = self.credentials.get(access_key)
        if secret is None:
            raise SqsError(INVALID_CLIENT_TOKEN_ID,
                           "The security token included in the request is invalid.")
        when = _amz_time(stamp)
        if when is None:
            raise SqsError(INCOMPLETE_SIGNATURE, "X-Amz-Date is missing or malformed.")
        now = self.clock()
        if expires is not None:
            if not when - MAX_SKEW_SECONDS <= now <= when + expires:
                raise SqsError(REQUEST_EXPIRED, f"Request has expired (signed {stamp}).")
        elif abs(now - when) > MAX_SKEW_SECONDS:
            raise SqsError(REQUEST_EXPIRED, f"Request has expired: signed at {stamp}, more "
                           "than 15 minutes from the server's time.")
        names = signed.lower().split(";")
        if "host" not in names or any(n not in lower for n in names):
            raise SqsError(SIGNATURE_DOES_NOT_MATCH, "The signed headers must include host "
                           "and be present in the request.")
        headers = "".join(f"{n}:{','.join(' '.join(v.split()) for v in lower[n])}\n"
                          for n in names)
        canonical = "\n".join([method, quote(path or "/", safe="/~"), query, headers,
                               ";".join(names), payload])
        scope = f"{date}/{region}/{service}/aws4_request"
        to_sign = "\n".join([ALGORITHM, stamp, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        expected = hmac.new(signing_key(secret, date, region, service), to_sign.encode(),
                            hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()) or date != stamp[:8]:
            raise SqsError(SIGNATURE_DOES_NOT_MATCH, "The request signature we calculated "
                           "does not match the signature you provided. Check your AWS "
                           "Secret Access Key and signing method.")
        return access_key
