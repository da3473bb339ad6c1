"""Local FCM and APNs peers for tests: fresh credentials, the peers served over HTTP/2 with
a self-signed certificate, and channels pointed at them that trust it."""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from conveyor.demo.h2server import H2Server, server_context
from conveyor.demo.mobile_peers import ApnsPeer, FcmPeer
from conveyor.notify.apns import ApnsChannel
from conveyor.notify.fcm import FcmChannel
from tests.support.tls import self_signed


class Clock:
    """A settable wall clock shared by a channel and its peer; it starts at the real time,
    so a channel in another process (on the real clock) agrees with the peer too."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _pem(key: Any) -> str:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


@dataclass
class Mobile:
    """Both peers running, and what a channel needs to reach them (`fcm_clock` and
    `apns_clock` are the channels' clocks; the peers' are `fcm.clock`, `apns.clock`)."""

    fcm: FcmPeer
    apns: ApnsPeer
    fcm_port: int
    apns_port: int
    context: ssl.SSLContext
    account: dict[str, Any]
    apns_key: str
    fcm_clock: Clock
    apns_clock: Clock

    def fcm_channel(self, **kwargs: Any) -> FcmChannel:
        """An FCM channel using the peer's token endpoint and trusting its certificate."""
        return FcmChannel(self.account, url=f"https://127.0.0.1:{self.fcm_port}",
                          ssl_context=self.context, clock=self.fcm_clock, **kwargs)

    def apns_channel(self, **kwargs: Any) -> ApnsChannel:
        """An APNs channel with the peer's key id, team id and topic."""
        return ApnsChannel(self.apns_key, "KEY1234567", "TEAM123456", "com.example.app",
                           url=f"https://127.0.0.1:{self.apns_port}",
                           ssl_context=self.context, clock=self.apns_clock, **kwargs)


@contextlib.asynccontextmanager
async def mobile_peers(folder: Path, *, channel_clocks: bool = True) -> AsyncIterator[Mobile]:
    """Serve an FCM peer (with its token endpoint) and an APNs peer on free ports. The
    channels share their peer's clock unless `channel_clocks` is False (then each side has
    its own, to make them disagree)."""
    cert, key = self_signed(folder)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    fcm_clock, apns_clock = Clock(), Clock()
    fcm = FcmPeer("demo-project", "sender@demo-project.iam.gserviceaccount.com",
                  rsa_key.public_key(), clock=fcm_clock)
    apns = ApnsPeer({"KEY1234567": ec_key.public_key()}, "TEAM123456", "com.example.app",
                    clock=apns_clock)
    context = server_context(cert, key)
    async with H2Server(fcm.handle, context) as fcm_server, \
            H2Server(apns.handle, context) as apns_server:
        fcm.token_uri = f"https://127.0.0.1:{fcm_server.port}/token"
        account = {"type": "service_account", "project_id": "demo-project",
                   "private_key_id": "k1", "private_key": _pem(rsa_key),
                   "client_email": fcm.client_email, "token_uri": fcm.token_uri}
        client = ssl.create_default_context(cafile=str(cert))
        yield Mobile(fcm, apns, fcm_server.port, apns_server.port, client, account,
                     _pem(ec_key), fcm_clock if channel_clocks else Clock(),
                     apns_clock if channel_clocks else Clock())
