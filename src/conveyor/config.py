"""Configuration as small frozen value objects, read from `CONVEYOR_*` variables on request.

Nothing here reads the environment at import time: `from_env()` and `client_from_env()` do,
when called (by the CLI and the ASGI factory). Flags override the environment, which
overrides the defaults below; use `dataclasses.replace` to layer them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from conveyor.errors import InvalidInput

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8600
DEFAULT_SQS_PORT = 9324
DEFAULT_ACCOUNT_ID = "000000000000"
DEFAULT_REGION = "us-east-1"
DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
MAX_REQUEST_BYTES = 10 * 1024 * 1024
DEFAULT_TIMEOUT = 60.0
MAX_IN_FLIGHT = 120_000
"""Leased messages a queue may have at once (SQS's limit); the broker refuses more."""
MAX_LONG_POLLS = 10_000
"""Receives waiting at once in one process (`Broker(max_long_polls=)`)."""
DEFAULT_HEADER_TIMEOUT = 10.0
"""Seconds a connection has to send a complete request head (`conveyor.http.headertimeout`)."""

__all__ = [
    "ClientConfig",
    "Config",
    "ServerConfig",
    "SqsConfig",
    "client_from_env",
    "from_env",
]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Where the native HTTP API listens and how many processes serve it."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    workers: int = 1
    max_request_bytes: int = MAX_REQUEST_BYTES
    # trust: TLS for both servers, and per-queue quotas (OverLimit past them)
    tls_cert: str | None = None
    tls_key: str | None = None
    max_in_flight: int = MAX_IN_FLIGHT
    max_depth: int | None = None
    max_long_polls: int = MAX_LONG_POLLS  # receives waiting at once, per process
    # connections served at once, per process (None: the open-files limit less a reserve;
    # past it new connections get a 503, see conveyor.http.listener)
    max_connections: int | None = None
    # seconds from a connection (or a request's first byte) to its complete head; later,
    # the server closes it, so slow or stalled clients cannot hold those slots
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    # trust: Host names (beyond loopback) a key-less server answers; also accepted Origins
    allowed_hosts: tuple[str, ...] = ()
    # the delivery workers' file templates (their --templates DIR), so that a notification
    # naming a template neither stored nor there is refused when it is made (404)
    templates: str | None = None

    def __post_init__(self) -> None:
        _check_port("port", self.port)
        if (self.tls_cert is None) != (self.tls_key is None):
            raise InvalidInput("TLS needs both a certificate and its key.", field="tls_cert")
        if self.max_in_flight < 1 or (self.max_depth is not None and self.max_depth < 1):
            raise InvalidInput("max_in_flight and max_depth must be at least 1.",
                               field="max_in_flight")
        if self.max_connections is not None and self.max_connections < 1:
            raise InvalidInput("max_connections must be at least 1.", field="max_connections")
        if not 0 < self.header_timeout <= 3600:  # also refuses NaN
            raise InvalidInput("header_timeout must be more than 0 and at most 3600 seconds.",
                               field="header_timeout")
        if self.max_long_polls < 0:
            raise InvalidInput("max_long_polls must be 0 or more.", field="max_long_polls")
        if not 1 <= self.workers <= 256:
            raise InvalidInput("workers must be between 1 and 256.", field="workers")
        if self.max_request_bytes < 1024:
            raise InvalidInput("max_request_bytes must be at least 1024.",
                               field="max_request_bytes")


@dataclass(frozen=True, slots=True)
class SqsConfig:
    """The Amazon-SQS-compatible endpoint, served beside the native API."""

    enabled: bool = True
    port: int = DEFAULT_SQS_PORT
    account_id: str = DEFAULT_ACCOUNT_ID
    # trust: the retired "AKID:SECRET,..." option; set, `serve` says to make API keys
    credentials: str = ""
    # AWS refuses a second PurgeQueue of a queue, and re-creating a deleted queue's name,
    # for 60 seconds; relaxed lifts both waits (for test suites that reuse names at once).
    relaxed: bool = False

    def __post_init__(self) -> None:
        _check_port("sqs_port", self.port)
        if not (len(self.account_id) == 12 and self.account_id.isascii()
                and self.account_id.isdigit()):
            raise InvalidInput("The SQS account id is 12 digits.", field="sqs_account_id")


@dataclass(frozen=True, slots=True)
class FeedbackConfig:
    """Which email providers may post bounces and complaints to `/v1/feedback/...`
    (see `conveyor.notify.feedback.FeedbackSettings`)."""

    sendgrid_key: str | None = None
    postmark_secret: str | None = None
    sns_topics: tuple[str, ...] = ()
    soft_limit: int = 3

    @property
    def enabled(self) -> bool:
        """Whether any provider is configured."""
        return bool(self.sendgrid_key or self.postmark_secret or self.sns_topics)


@dataclass(frozen=True, slots=True)
class Config:
    """Everything `conveyor serve` needs; `database_url=None` is the embedded SQLite file."""

    database_url: str | None = None
    region: str = DEFAULT_REGION
    server: ServerConfig = field(default_factory=ServerConfig)
    sqs: SqsConfig = field(default_factory=SqsConfig)
    log_json: bool = False  # one JSON object a log line (else text), each with its request id
    # trust: seals API keys' secrets at rest (sealing.py); kept out of repr, logs, tracebacks
    keys_secret: str | None = field(default=None, repr=False)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Where the client commands find a server, and how long they wait for it."""

    url: str = DEFAULT_URL
    timeout: float = DEFAULT_TIMEOUT
    api_key: str | None = None  # sent as a bearer token when the server requires keys

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise InvalidInput(f"The server URL {self.url!r} must start with http:// or "
                               "https://.", field="url")
        if self.timeout <= 0:
            raise InvalidInput("timeout must be positive.", field="timeout")


def from_env(environ: Mapping[str, str] | None = None) -> Config:
    """Read the server configuration from `CONVEYOR_*` variables (`os.environ` by default).

    CONVEYOR_DATABASE_URL, CONVEYOR_REGION, CONVEYOR_HOST, CONVEYOR_PORT, CONVEYOR_WORKERS,
    CONVEYOR_MAX_REQUEST_BYTES, CONVEYOR_SQS_PORT, CONVEYOR_SQS_ACCOUNT_ID, CONVEYOR_NO_SQS,
    CONVEYOR_LOG_FORMAT (text or json), CONVEYOR_TLS_CERT, CONVEYOR_TLS_KEY,
    CONVEYOR_MAX_IN_FLIGHT, CONVEYOR_MAX_DEPTH (0: none), CONVEYOR_MAX_LONG_POLLS,
    CONVEYOR_MAX_CONNECTIONS (0: from the open-files limit), CONVEYOR_HEADER_TIMEOUT
    (seconds for a request's head to arrive, default 10), CONVEYOR_ALLOWED_HOSTS
    (comma-separated), CONVEYOR_TEMPLATES (the workers' template folder),
    CONVEYOR_KEYS_SECRET, CONVEYOR_SQS_RELAXED,
    CONVEYOR_SQS_CREDENTIALS (retired: refused); provider feedback:
    CONVEYOR_FEEDBACK_SENDGRID_KEY, CONVEYOR_FEEDBACK_POSTMARK_SECRET,
    CONVEYOR_FEEDBACK_SNS_TOPICS (comma-separated ARNs), CONVEYOR_FEEDBACK_SOFT_LIMIT.
    """
    env = os.environ if environ is None else environ
    server = ServerConfig(
        host=env.get("CONVEYOR_HOST") or DEFAULT_HOST,
        port=_int(env, "CONVEYOR_PORT", DEFAULT_PORT),
        workers=_int(env, "CONVEYOR_WORKERS", 1),
        max_request_bytes=_int(env, "CONVEYOR_MAX_REQUEST_BYTES", MAX_REQUEST_BYTES),
        tls_cert=env.get("CONVEYOR_TLS_CERT") or None,
        tls_key=env.get("CONVEYOR_TLS_KEY") or None,
        max_in_flight=_int(env, "CONVEYOR_MAX_IN_FLIGHT", MAX_IN_FLIGHT),
        max_depth=_int(env, "CONVEYOR_MAX_DEPTH", 0) or None,
        max_long_polls=_int(env, "CONVEYOR_MAX_LONG_POLLS", MAX_LONG_POLLS),
        max_connections=_int(env, "CONVEYOR_MAX_CONNECTIONS", 0) or None,
        header_timeout=_float(env, "CONVEYOR_HEADER_TIMEOUT", DEFAULT_HEADER_TIMEOUT),
        allowed_hosts=tuple(h.strip() for h in (env.get("CONVEYOR_ALLOWED_HOSTS") or "")
                            .split(",") if h.strip()),
        templates=env.get("CONVEYOR_TEMPLATES") or None,
    )
    sqs = SqsConfig(
        enabled=not _bool(env, "CONVEYOR_NO_SQS"),
        port=_int(env, "CONVEYOR_SQS_PORT", DEFAULT_SQS_PORT),
        account_id=env.get("CONVEYOR_SQS_ACCOUNT_ID") or DEFAULT_ACCOUNT_ID,
        credentials=env.get("CONVEYOR_SQS_CREDENTIALS") or "",
        relaxed=_bool(env, "CONVEYOR_SQS_RELAXED"),
    )
    return Config(
        database_url=env.get("CONVEYOR_DATABASE_URL") or None,
        region=env.get("CONVEYOR_REGION") or DEFAULT_REGION,
        server=server,
        sqs=sqs,
        log_json=(env.get("CONVEYOR_LOG_FORMAT") or "text").lower() == "json",
        keys_secret=env.get("CONVEYOR_KEYS_SECRET") or None,
        feedback=FeedbackConfig(
            sendgrid_key=env.get("CONVEYOR_FEEDBACK_SENDGRID_KEY") or None,
            postmark_secret=env.get("CONVEYOR_FEEDBACK_POSTMARK_SECRET") or None,
            sns_topics=tuple(t.strip() for t in (env.get("CONVEYOR_FEEDBACK_SNS_TOPICS")
                                                 or "").split(",") if t.strip()),
            soft_limit=_int(env, "CONVEYOR_FEEDBACK_SOFT_LIMIT", 3)),
    )


def client_from_env(environ: Mapping[str, str] | None = None) -> ClientConfig:
    """Read the client configuration: CONVEYOR_URL, CONVEYOR_TIMEOUT, CONVEYOR_API_KEY."""
    env = os.environ if environ is None else environ
    timeout = env.get("CONVEYOR_TIMEOUT")
    try:
        seconds = float(timeout) if timeout else DEFAULT_TIMEOUT
    except ValueError:
        raise InvalidInput(f"CONVEYOR_TIMEOUT must be a number, not {timeout!r}.",
                           field="CONVEYOR_TIMEOUT") from None
    return ClientConfig(url=env.get("CONVEYOR_URL") or DEFAULT_URL, timeout=seconds,
                        api_key=env.get("CONVEYOR_API_KEY") or None)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, not {raw!r}.", field=name) from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a number, not {raw!r}.", field=name) from None


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise InvalidInput(f"{name} must be true or false, not {raw!r}.", field=name)


def _check_port(name: str, port: int) -> None:
    if not 0 <= port <= 65535:
        raise InvalidInput(f"{name} must be between 0 and 65535, not {port}.", field=name)
