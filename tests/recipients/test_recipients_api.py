"""Recipients through the broker (`broker.recipients`) and the HTTP API, on both backends:
put, get, replace, delete; bad input is refused with the field named and nothing stored."""

from __future__ import annotations

import httpx
import pytest

from conveyor.broker.broker import Broker
from conveyor.errors import InvalidInput, TooManyEntries
from conveyor.http.app import create_app
from conveyor.recipients import Recipient, parse_line, parse_recipient

ANN = {"timezone": "Europe/Berlin", "locale": "de-DE",
       "addresses": {"email": ["ann@example.com"], "fcm": ["tok-1"],
                     "push": [{"endpoint": "https://push.example/1",
                               "keys": {"p256dh": "P", "auth": "A"}}]},
       "preferences": {"marketing": {"email": False}},
       "quiet_hours": {"start": "22:00", "end": "07:00"}}


@pytest.mark.parametrize(("doc", "field"), [
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"timezone": "../../etc/passwd"}, "timezone"),
    ({"timezone": 5}, "timezone"),
    ({"locale": "not a locale"}, "locale"),
    ({"quiet_hours": {"start": "22:00"}}, "quiet_hours"),
    ({"quiet_hours": {"start": "24:00", "end": "07:00"}}, "quiet_hours"),
    ({"quiet_hours": {"start": "7:00", "end": "08:00"}}, "quiet_hours"),
    ({"quiet_hours": {"start": "07:00", "end": "07:00"}}, "quiet_hours"),
    ({"addresses": {"sms": ["+1555"]}}, "addresses"),
    ({"addresses": {"email": ["not-an-address"]}}, "addresses"),
    ({"addresses": {"email": ["a@example.com", "a@example.com"]}}, "addresses"),
    ({"addresses": {"push": [{"endpoint": "http://plain", "keys": {"p256dh": "P",
                                                                   "auth": "A"}}]}},
     "addresses"),
    ({"addresses": {"fcm": [""]}}, "addresses"),
    # The shapes the suppression list asks too (`recipients.address_shaped`, one rule):
    ({"addresses": {"push": [{"endpoint": "https://", "keys": {"p256dh": "P",
                                                               "auth": "A"}}]}},
     "addresses"),
    ({"addresses": {"fcm": ["tok en"]}}, "addresses"),
    ({"addresses": {"apns": ["not-hex"]}}, "addresses"),
    ({"addresses": {"apns": ["0" * 63]}}, "addresses"),
    ({"preferences": {"marketing": {"email": "no"}}}, "preferences"),
    ({"preferences": {"marketing": {"sms": False}}}, "preferences"),
    ({"nickname": "x"}, "nickname"),
])
async def test_bad_input_names_the_field_and_stores_nothing(broker: Broker, doc: dict,
                                                            field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        await broker.recipients.put("ann", doc)
    assert caught.value.field == field
    assert await broker.recipients.get("ann") is None
    assert await broker.recipients.count() == 0


async def test_put_get_replace_delete(broker: Broker) -> None:
    stored = await broker.recipients.put("ann", ANN)
    assert stored.updated_at == broker.wall_now()
    got = await broker.recipients.get("ann")
    assert got == stored and got.quiet_hours is not None
    assert got.addresses["email"] == ("ann@example.com",)
    assert got.zone.key == "Europe/Berlin"
    replaced = await broker.recipients.put("ann", {"addresses": {"email": "a2@example.com"}})
    assert (replaced.timezone, replaced.addresses, replaced.quiet_hours) == (
        "UTC", {"email": ("a2@example.com",)}, None)
    with pytest.raises(InvalidInput):
        await broker.recipients.get("bad id with spaces")
    assert await broker.recipients.delete("ann")
    assert not await broker.recipients.delete("ann")
    assert await broker.recipients.count() == 0


async def test_a_person_stored_before_the_address_shapes_still_reads(
        broker: Broker) -> None:
    """Stored rows are read through `parse_recipient` too; an APNs token that is no hex,
    accepted before the shapes were asked, must not make the person unreadable."""
    await broker.storage.recipient_put_many([Recipient("old", addresses={"apns": ("tok",)})],
                                            broker.now())
    old = await broker.recipients.get("old")
    assert old is not None and old.addresses == {"apns": ("tok",)}
    assert [r.id for r in await broker.recipients.page()] == ["old"]
    with pytest.raises(InvalidInput):  # written again, it must have the shape
        await broker.recipients.put("old", {"addresses": {"apns": ["tok"]}})


async def test_put_many_is_all_or_nothing_per_batch(broker: Broker) -> None:
    batch = [parse_recipient(f"r{i}", {}) for i in range(3)]
    with pytest.raises(InvalidInput):
        await broker.recipients.put_many([*batch, parse_recipient("r0", {})])
    with pytest.raises(TooManyEntries):
        await broker.recipients.put_many([parse_recipient(f"x{i}", {}) for i in range(5001)])
    assert await broker.recipients.count() == 0
    assert await broker.recipients.put_many(batch) == 3
    assert await broker.recipients.count() == 3


async def test_import_lines_json_and_csv(broker: Broker) -> None:
    jsonl = ['{"id": "j1", "timezone": "America/New_York", "addresses": {"email": '
             '"j1@example.com"}}', "", '{"id": "j2"}']
    assert await broker.recipients.import_lines(jsonl, batch=1) == 2
    rows = [{"id": "c1", "timezone": "Asia/Tokyo", "email": "c1@example.com c1b@example.com",
             "fcm": "tok", "quiet_hours": "21:30-06:45",
             "preferences": '{"news": {"fcm": false}}'},
            {"id": "c2", "email": "", "timezone": ""}]
    seen: list[int] = []
    assert await broker.recipients.import_lines(
        rows, progress=lambda n, s: seen.append(n)) == 2
    assert seen == [2]
    c1 = await broker.recipients.get("c1")
    assert c1 is not None and c1.addresses == {"email": ("c1@example.com", "c1b@example.com"),
                                               "fcm": ("tok",)}
    assert c1.quiet_hours is not None and c1.quiet_hours.to_json() == {"start": "21:30",
                                                                       "end": "06:45"}
    assert c1.preferences == {"news": {"fcm": False}}
    c2 = await broker.recipients.get("c2")
    assert c2 is not None and c2.timezone == "UTC" and c2.addresses == {}
    # A bad line stops the import and says which; the batch it was in is not stored.
    bad = ['{"id": "k1"}', '{"id": "k2", "timezone": "Nowhere/Land"}']
    with pytest.raises(InvalidInput, match="Line 2: Unknown time zone"):
        await broker.recipients.import_lines(bad)
    assert await broker.recipients.get("k1") is None
    with pytest.raises(InvalidInput, match="Unknown column"):
        parse_line({"id": "x", "phone": "1"})


async def test_http_routes(broker: Broker) -> None:
    transport = httpx.ASGITransport(app=create_app(broker))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        put = await http.put("/v1/recipients/ann", json=ANN)
        assert put.status_code == 200, put.text
        body = put.json()
        assert body["timezone"] == "Europe/Berlin" and body["quiet_hours"] == {
            "start": "22:00", "end": "07:00"}
        assert body["addresses"]["push"][0]["endpoint"] == "https://push.example/1"
        got = await http.get("/v1/recipients/ann")
        assert got.status_code == 200 and got.json() == body
        missing = await http.get("/v1/recipients/bob")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "recipient_not_found"
        bad = await http.put("/v1/recipients/ann", json={**ANN, "timezone": "Nowhere/Land"})
        assert bad.status_code == 422, bad.text
        assert "time zone" in bad.json()["error"]["message"]
        assert (await http.get("/v1/recipients/ann")).json() == body  # unchanged
        window = await http.put("/v1/recipients/ann", json={"quiet_hours": {"start": "x"}})
        assert window.status_code == 422
        extra = await http.put("/v1/recipients/ann", json={"nickname": "A"})
        assert extra.status_code == 422
        assert (await http.delete("/v1/recipients/ann")).status_code == 204
        assert (await http.delete("/v1/recipients/ann")).status_code == 404
        spec = (await http.get("/openapi.json")).json()
        assert "/v1/recipients/{recipient_id}/notify" in spec["paths"]


async def test_bodies_storage_cannot_keep_are_refused(broker: Broker) -> None:
    transport = httpx.ASGITransport(app=create_app(broker))
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        assert (await http.put("/v1/recipients/ann", json=ANN)).status_code == 200
        before = (await http.get("/v1/recipients/ann")).json()
        lone = '{"category": "c", "template": "t", "data": {"a": "\\ud800"}}'
        for path, body, status in [
                ("/v1/recipients/ann", '{"addresses": {"email": ["a\\udfff@example.com"]}}',
                 422),
                ("/v1/recipients/ann/notify", lone, 422),
                ("/v1/recipients/ann/notify",
                 '{"category": "c", "template": "t", "data": {"a": 1e400}}', 400)]:
            method = http.put if path.endswith("ann") else http.post
            answer = await method(path, content=body, headers=headers)
            assert answer.status_code == status, answer.text
            assert answer.json()["error"]["code"] in ("invalid_input", "malformed_json")
        assert (await http.get("/v1/recipients/ann")).json() == before
        listed = await http.get("/v1/notifications", params={"recipient": "ann"})
        assert listed.status_code == 200 and not listed.json().get("notifications")


def test_permissions() -> None:
    """Recipients, deliveries and suppressions belong to the notify queues: reading needs
    `receive` there, changing `manage`, notifying `send`."""
    from conveyor.http.auth import Need, required

    assert required("GET", "/v1/recipients/ann") == Need("receive", "notify-*")
    assert required("PUT", "/v1/recipients/ann") == Need("manage", "notify-*")
    assert required("DELETE", "/v1/recipients/ann") == Need("manage", "notify-*")
    # Deliveries and suppressions are the notification queues' too (personal data).
    assert required("GET", "/v1/notifications") == Need("receive", "notify-*")
    assert required("GET", "/v1/notifications/counts") == Need("receive", "notify-*")
    assert required("GET", "/v1/suppressions") == Need("receive", "notify-*")
    assert required("POST", "/v1/suppressions") == Need("manage", "notify-*")
    assert required("DELETE", "/v1/suppressions") == Need("manage", "notify-*")
    assert required("POST", "/v1/recipients/ann/notify") == Need("send", "notify-*")
