"""FCM (HTTP v1) and APNs into real local HTTP/2 TLS peers that verify credentials and
payloads: delivery, dead tokens suppressed, throttling backed off, tokens reused and
renewed; on both backends where the ledger is involved."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from conveyor.broker.broker import Broker
from conveyor.demo.h2server import Request
from conveyor.demo.mobile_peers import REUSED_AFTER, apns_token, fcm_token
from conveyor.notify import Apns, ApnsChannel, Fcm, Notifier
from conveyor.notify.delivery import dlq_name
from tests.notify.helpers import TEMPLATES, deliver_until
from tests.support.mobile import Clock, mobile_peers


async def _deliver_all(notifier: Notifier, channel: str, n: int, clock: Any) -> None:
    state = {"done": False}

    async def settled() -> bool:
        c = (await notifier.counts()).get(channel, {})
        return c.get("sent", 0) + c.get("failed", 0) == n

    import asyncio

    async def watch() -> None:
        while not state["done"]:
            state["done"] = await settled()
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    await deliver_until(notifier, lambda: state["done"], clock_step=lambda: clock.advance(2))
    await watcher


async def test_fcm_delivers_suppresses_and_backs_off(broker: Broker, clock: Any,
                                                     tmp_path: Path) -> None:
    async with mobile_peers(tmp_path) as peers:
        ok, gone, busy, bad = fcm_token(1), fcm_token(2), fcm_token(3), "not a token!"
        peers.fcm.faults = {gone: ["UNREGISTERED"], busy: ["QUOTA_EXCEEDED:1"]}
        notifier = Notifier(broker, channels={"fcm": peers.fcm_channel()},
                            templates=TEMPLATES)
        ids = await notifier.asend_many([
            Fcm(token=t, template="welcome", data={"name": f"n{i}", "code": i},
                payload={"order": str(i)}, collapse_key="orders", ttl=3600,
                priority="high") for i, t in enumerate([ok, gone, busy, bad])])
        await _deliver_all(notifier, "fcm", 4, clock)
        assert peers.fcm.grants == 1  # one access token for every message
        assert peers.fcm.received == {ok: 1, busy: 1} and peers.fcm.bad == 0
        message = peers.fcm.messages[ok]
        assert message["notification"]["title"] == "Welcome, n0"
        assert message["data"] == {"order": "0"}
        assert message["android"]["collapse_key"] == "orders"
        assert message["android"]["ttl"] == "3600s"
        assert message["android"]["priority"] == "HIGH"
        assert message["android"]["notification"]["tag"] == ids[0]
    rows = [await notifier.status(i) for i in ids]
    assert rows[0] is not None and rows[0].status == "sent"
    assert rows[0].provider_id == "projects/demo-project/messages/1"
    assert rows[1] is not None and rows[1].status == "failed" and \
        "UNREGISTERED" in (rows[1].error or "")
    assert rows[2] is not None and rows[2].status == "sent" and rows[2].attempts == 2
    assert rows[3] is not None and rows[3].status == "failed" and \
        "INVALID_ARGUMENT" in (rows[3].error or "")
    assert await broker.ledger.suppressed("fcm", [ok, gone, busy, bad]) == {gone, bad}
    dead = await broker.receive(dlq_name("fcm"), 10, 30, 0)
    assert sorted(orjson.loads(m.body.text)["to"] for m in dead) == sorted([gone, bad])


async def test_fcm_suppressed_token_is_not_sent_again(broker: Broker, clock: Any,
                                                      tmp_path: Path) -> None:
    async with mobile_peers(tmp_path) as peers:
        token = fcm_token(7)
        await broker.ledger.suppress([("fcm", token, "UNREGISTERED earlier")])
        notifier = Notifier(broker, channels={"fcm": peers.fcm_channel()})
        delivery = await notifier.asend(Fcm(token=token, title="t", body="b"))
        await _deliver_all(notifier, "fcm", 1, clock)
        assert peers.fcm.received == {}
    row = await notifier.status(delivery)
    assert row is not None and row.status == "failed" and row.error == "suppressed"


async def test_fcm_access_token_renewed_before_expiry_and_on_401(tmp_path: Path) -> None:
    async with mobile_peers(tmp_path) as peers:
        peers.fcm.expires_in = 600
        channel = peers.fcm_channel(refresh_margin=300)
        await channel.open()
        try:
            items = [_item(fcm_token(i), i) for i in range(20)]
            sent = await channel.send_many(items, [channel.render(i) for i in items])
            assert {r.outcome for r in sent} == {"sent"} and peers.fcm.grants == 1
            peers.fcm_clock.advance(299)  # 301 s left: still good
            await channel.send_many(items[:1], [channel.render(items[0])])
            assert peers.fcm.grants == 1
            peers.fcm_clock.advance(2)  # 299 s left: renewed before it expires
            await channel.send_many(items[:1], [channel.render(items[0])])
            assert peers.fcm.grants == 2
            peers.fcm._tokens.clear()  # the provider revokes every token it gave
            again = await channel.send_many(items[:3], [channel.render(i) for i in items[:3]])
            assert {r.outcome for r in again} == {"sent"}
            assert peers.fcm.refused["UNAUTHENTICATED"] == 3 and peers.fcm.grants == 3
        finally:
            await channel.close()


async def test_fcm_unavailable_is_transient_and_throttles(tmp_path: Path) -> None:
    from conveyor.notify.outcomes import throttled

    async with mobile_peers(tmp_path) as peers:
        down, broken = fcm_token(1), fcm_token(2)
        peers.fcm.faults = {down: ["UNAVAILABLE:7"], broken: ["SENDER_ID_MISMATCH"]}
        channel = peers.fcm_channel()
        items = [_item(down, 1), _item(broken, 2)]
        try:
            first, second = await channel.send_many(items, [channel.render(i) for i in items])
        finally:
            await channel.close()
    assert first.outcome == "transient" and first.retry_after == 7 and throttled(first)
    assert second.outcome == "permanent" and not second.gone


async def test_fcm_bad_credentials_fail_clearly(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    async with mobile_peers(tmp_path) as peers:
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        peers.fcm.public_key = other.public_key()  # the peer no longer knows our key
        channel = peers.fcm_channel()
        try:
            [result] = await channel.send_many([_item(fcm_token(1), 1)],
                                               [channel.render(_item(fcm_token(1), 1))])
        finally:
            await channel.close()
    assert result.outcome == "permanent" and "invalid_grant" in (result.detail or "")
    assert peers.fcm.received == {}


def test_fcm_render_limits_and_data_only() -> None:
    from conveyor.notify.channel import PayloadTooLarge
    from conveyor.notify.fcm import FcmChannel

    channel = FcmChannel(_account())
    from conveyor.notify.models import Item

    data_only = Item("d" * 32, "t" * 30, None, {}, {"payload": {"k": "v"}}, 0)
    body = orjson.loads(channel.render(data_only))
    assert body == {"message": {"token": "t" * 30, "data": {"k": "v"}}}
    with pytest.raises(PayloadTooLarge):
        channel.render(_item("t" * 30, 1, payload={"k": "v" * 5000}))


async def test_apns_delivers_suppresses_and_backs_off(broker: Broker, clock: Any,
                                                      tmp_path: Path) -> None:
    async with mobile_peers(tmp_path) as peers:
        ok, gone, busy, bad = apns_token(1), apns_token(2), apns_token(3), "abc"
        peers.apns.faults = {gone: ["410 Unregistered"], busy: ["429 TooManyRequests:1"]}
        notifier = Notifier(broker, channels={"apns": peers.apns_channel()},
                            templates=TEMPLATES)
        ids = await notifier.asend_many([
            Apns(token=t, template="welcome", data={"name": f"n{i}", "code": i}, badge=3,
                 sound="default", payload={"order": i}, expiration=1_900_000_000)
            for i, t in enumerate([ok, gone, busy, bad])])
        await _deliver_all(notifier, "apns", 4, clock)
        assert peers.apns.received == {ok: 1, busy: 1}
        assert peers.apns.tokens_seen == 1  # one provider token for every request
        payload, headers = peers.apns.messages[ok]
        assert payload == {"order": 0, "aps": {"alert": {"title": "Welcome, n0", "body": (
            "Hi n0,\nyour code is 0.\n.a line starting with a dot")}, "badge": 3,
            "sound": "default"}}
        assert headers["apns-topic"] == "com.example.app"
        assert headers["apns-push-type"] == "alert" and headers["apns-priority"] == "10"
        assert headers["apns-expiration"] == "1900000000"
        assert headers["apns-collapse-id"] == ids[0]
        assert headers["apns-id"] == str(uuid.UUID(hex=ids[0]))
    rows = [await notifier.status(i) for i in ids]
    assert rows[0] is not None and rows[0].status == "sent"
    assert rows[0].provider_id == str(uuid.UUID(hex=ids[0]))
    assert rows[1] is not None and rows[1].status == "failed" and \
        "410 Unregistered" in (rows[1].error or "")
    assert rows[2] is not None and rows[2].status == "sent" and rows[2].attempts == 2
    assert rows[3] is not None and rows[3].status == "failed" and \
        "BadDeviceToken" in (rows[3].error or "")
    assert await broker.ledger.suppressed("apns", [ok, gone, busy, bad]) == {gone, bad}


async def test_apns_provider_token_reused_renewed_and_refreshed_on_403(tmp_path: Path
                                                                      ) -> None:
    async with mobile_peers(tmp_path, channel_clocks=False) as peers:
        channel = peers.apns_channel()  # its clock is its own: Apple's may run ahead
        ours, apple = peers.apns_clock, peers.apns.clock
        assert isinstance(apple, Clock) and ours is not apple
        items = [_item(apns_token(i), i) for i in range(30)]
        try:
            sent = await channel.send_many(items, [channel.render(i) for i in items])
            assert {r.outcome for r in sent} == {"sent"}
            assert channel.tokens_made == 1 and peers.apns.tokens_seen == 1
            # 25 minutes on our side (token kept: renewal is at 40), 61 on Apple's
            ours.advance(25 * 60)
            apple.advance(61 * 60)
            again = await channel.send_many(items[:5], [channel.render(i) for i in items[:5]])
            assert {r.outcome for r in again} == {"sent"}
            assert peers.apns.refused["ExpiredProviderToken"] == 5
            assert channel.tokens_made == 2  # renewed once, not once per refusal
            assert peers.apns.refused["TooManyProviderTokenUpdates"] == 0
            # past token_ttl on both sides: renewed before Apple would refuse it
            ours.advance(41 * 60)
            apple.advance(41 * 60)
            await channel.send_many(items[:1], [channel.render(items[0])])
            assert channel.tokens_made == 3 and peers.apns.refused["ExpiredProviderToken"] == 5
        finally:
            await channel.close()


async def test_apns_background_and_refusals(tmp_path: Path) -> None:
    from hpack import NeverIndexedHeaderTuple

    from conveyor.errors import InvalidInput

    async with mobile_peers(tmp_path) as peers:
        channel = peers.apns_channel()
        token = apns_token(9)
        peers.apns.faults = {apns_token(8): ["403 InvalidProviderToken"],
                             apns_token(7): ["503 ServiceUnavailable"]}
        items = [_item(token, 9, alert=False, push_type="background", payload={"sync": 1}),
                 _item(apns_token(8), 8), _item(apns_token(7), 7)]
        try:
            results = await channel.send_many(items, [channel.render(i) for i in items])
        finally:
            await channel.close()
        payload, headers = peers.apns.messages[token]
        assert payload == {"sync": 1, "aps": {"content-available": 1}}
        assert headers["apns-push-type"] == "background" and headers["apns-priority"] == "5"
        assert [r.outcome for r in results] == ["sent", "permanent", "transient"]
        assert not results[1].gone
        with pytest.raises(InvalidInput):
            channel.render(_item(token, 1, push_type="nonsense"))
        with pytest.raises(InvalidInput):
            channel.render(_item(token, 1, collapse_id="x" * 65))
        # ids seen once stay out of the HPACK table; a collapse id the sender chose may
        # repeat across devices and is indexed
        one_off = {h[0] for h in channel.render(_item(token, 1))[1]
                   if isinstance(h, NeverIndexedHeaderTuple)}
        assert one_off == {"apns-id", "apns-collapse-id"}
        chosen = channel.render(_item(token, 1, collapse_id="sale"))[1]
        assert {h[0] for h in chosen if isinstance(h, NeverIndexedHeaderTuple)} == {"apns-id"}


# helpers --------------------------------------------------------------------------------
def _item(token: str, i: int, alert: bool = True, **extra: Any) -> Any:
    from conveyor.notify.models import Item

    x: dict[str, Any] = {"title": "Hello", "body": f"body {i}"} if alert else {}
    return Item(uuid.uuid4().hex, token, None, {}, {**x, **extra}, 0)


def _account() -> dict[str, Any]:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {"project_id": "p", "client_email": "a@p.iam.gserviceaccount.com",
            "token_uri": "https://127.0.0.1:9/token", "private_key": key.private_bytes(
                Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()}


async def test_cli_send_and_worker_with_fcm_and_apns(tmp_path: Path) -> None:
    import asyncio
    import json
    import os
    import sys

    async def conveyor(*args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "conveyor.cli.main", *args, cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, out.decode() + err.decode()
        return out.decode()

    db = f"sqlite:///{tmp_path / 'n.db'}"
    async with mobile_peers(tmp_path) as peers:
        credentials, p8 = tmp_path / "sa.json", tmp_path / "key.p8"
        credentials.write_text(json.dumps(peers.account))
        p8.write_text(peers.apns_key)
        for channel, token in (("fcm", fcm_token(5)), ("apns", apns_token(5))):
            await conveyor("notify", "send", "--channel", channel, "--to", token,
                           "--subject", "Hi", "--text", f"hello {channel}", "--database", db)
        out = await conveyor(
            "notify", "worker", "--database", db, "--seconds", "4",
            "--fcm-credentials", str(credentials), "--fcm-url",
            f"https://127.0.0.1:{peers.fcm_port}", "--apns-key", str(p8),
            "--apns-key-id", "KEY1234567", "--apns-team-id", "TEAM123456", "--apns-topic",
            "com.example.app", "--apns-url", f"https://127.0.0.1:{peers.apns_port}",
            "--ca-file", str(tmp_path / "cert.pem"))
        assert "channels apns, fcm" in out and json.loads(out.splitlines()[-1])["sent"] == 2
        assert peers.fcm.messages[fcm_token(5)]["notification"] == {
            "title": "Hi", "body": "hello fcm"}
        assert peers.apns.messages[apns_token(5)][0]["aps"]["alert"] == {
            "title": "Hi", "body": "hello apns"}


def test_settings_say_what_a_mobile_channel_lacks(tmp_path: Path) -> None:
    from conveyor.errors import InvalidInput
    from conveyor.notify.settings import ChannelSettings, notification

    p8 = tmp_path / "key.p8"
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    p8.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    with pytest.raises(InvalidInput, match="--apns-key-id, --apns-team-id"):
        ChannelSettings(apns_key=str(p8), apns_topic="com.example.app").channels()
    sa = tmp_path / "sa.json"
    sa.write_text('{"project_id": "p"}')
    with pytest.raises(InvalidInput, match="private_key, client_email, token_uri"):
        ChannelSettings(fcm_credentials=str(sa)).channels()
    with pytest.raises(InvalidInput, match="--template or --text"):
        notification("fcm", fcm_token(1))
    note = notification("apns", apns_token(1), subject="t", text="b")
    assert isinstance(note, Apns) and note.title == "t" and note.body == "b"


async def test_fcm_token_endpoint_down_is_transient(tmp_path: Path) -> None:
    async with mobile_peers(tmp_path) as peers:
        account = dict(peers.account, token_uri="https://127.0.0.1:9/token")  # nobody there
        from conveyor.notify.fcm import FcmChannel

        channel = FcmChannel(account, url=f"https://127.0.0.1:{peers.fcm_port}",
                             ssl_context=peers.context, timeout=5)
        item = _item(fcm_token(1), 1)
        try:
            [result] = await channel.send_many([item], [channel.render(item)])
        finally:
            await channel.close()
    assert result.outcome == "transient" and "token endpoint unreachable" in (
        result.detail or "")
    assert peers.fcm.received == {}


async def test_apns_peer_refuses_token_churn_per_connection(tmp_path: Path) -> None:
    async with mobile_peers(tmp_path) as peers:
        first, second = peers.apns_channel(), peers.apns_channel()
        item = _item(apns_token(3), 3)
        try:
            [ok] = await first.send_many([item], [first.render(item)])
            peers.apns_clock.advance(5 * 60)
            first._token = None  # a sender that re-signs too soon, on the same connection
            [churn] = await first.send_many([item], [first.render(item)])
            [other] = await second.send_many([item], [second.render(item)])  # its own
        finally:
            await first.close()
            await second.close()
    assert ok.outcome == "sent" and other.outcome == "sent"
    assert churn.outcome == "transient" and "TooManyProviderTokenUpdates" in (
        churn.detail or "")


async def test_apns_peer_takes_a_reused_address_for_a_new_connection(tmp_path: Path
                                                                      ) -> None:
    """The demo's HTTP/2 server knows a connection by its address, which loopback gives to
    a new connection soon after the old one closed (a restarted worker, the next round of
    a benchmark): a newer token there is refused only while the address is busy."""
    async with mobile_peers(tmp_path) as peers:
        first, second = peers.apns_channel(), peers.apns_channel()
        item = _item(apns_token(4), 4)
        path, headers, body = first.render(item)
        address = 12345  # one client address:port, as the server hashes it

        def post(channel: ApnsChannel) -> int:
            auth = {"authorization": f"bearer {channel.provider_token()}"}
            request = Request("POST", path, {**dict(headers), **auth}, body, address)
            return peers.apns.handle(request)[0]

        assert post(first) == 200
        peers.apns_clock.advance(5 * 60)  # the second sender's token is 5 minutes newer
        assert post(second) == 429  # at once: the same connection re-signing too soon
        await asyncio.sleep(REUSED_AFTER + 0.1)
        assert post(second) == 200  # the address's connection is a new one now
        assert post(first) == 200  # an older token than the address's newest: no update
