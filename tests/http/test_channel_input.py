"""Notification channels and addresses on the wire: a filter naming a channel that does
not exist is a 422 naming the known channels (it answered an empty list), and `POST
/v1/suppressions` checks the address as the channel's (it took any string for any
channel). In process, on both backends; nothing is written by a refused request."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conveyor.broker.broker import Broker
from tests.http.helpers import assert_error

FILTERS = ["/v1/notifications/counts", "/v1/notifications/series", "/v1/suppressions"]


@pytest.mark.parametrize("path", FILTERS)
async def test_an_unknown_channel_filter_is_422_naming_the_channels(
        http: httpx.AsyncClient, path: str) -> None:
    for bad in ("fax", "", "EMAIL", "email-dlq", "x" * 300, "em\x01ail"):
        error = assert_error(await http.get(path, params={"channel": bad}), 422,
                             "invalid_input", field="channel")
        assert "the channels are apns, apprise, email, fcm, push, webhook" in \
            error["message"], error
        assert len(error["message"]) < 200, error  # one sentence, the bad name cut short
    for good in ("email", "push", "fcm", "apns", "webhook", "apprise"):
        got = await http.get(path, params={"channel": good})
        assert got.status_code == 200, (good, got.text)


async def test_an_applications_own_channel_is_known_by_its_queue(http: httpx.AsyncClient,
                                                                   broker: Broker) -> None:
    """`Notifier(channels={"sms": ...})` makes `notify-sms` on its first send."""
    assert_error(await http.get("/v1/suppressions", params={"channel": "sms"}), 422,
                 field="channel")
    await broker.create_queue("notify-sms")
    await broker.create_queue("notify-sms-dlq")
    for path in FILTERS:
        got = await http.get(path, params={"channel": "sms"})
        assert got.status_code == 200, (path, got.text)
    error = assert_error(await http.get(FILTERS[0], params={"channel": "fax"}), 422)
    assert "push, sms, webhook." in error["message"]  # its DLQ is no channel


SUPPRESSIONS: list[tuple[dict[str, Any], str]] = [
    ({"channel": "fax", "address": "x"}, "channel"),
    ({"channel": "", "address": "ann@example.com"}, "channel"),
    ({"channel": "email", "address": "not-an-email"}, "address"),
    ({"channel": "email", "address": "ann@localhost"}, "address"),
    ({"channel": "email", "address": ""}, "address"),
    ({"channel": "email", "address": " ann@example.com"}, "address"),
    ({"channel": "email", "address": "ann@example.com\r\nBcc: x@example.com"}, "address"),
    ({"channel": "email", "address": "a" * 3000 + "@example.com"}, "address"),
    ({"channel": "push", "address": "http://push.example/sub/1"}, "address"),
    ({"channel": "push", "address": "not a url"}, "address"),
    ({"channel": "fcm", "address": "tok\x1ben"}, "address"),
    ({"channel": "apns", "address": "tok\ten"}, "address"),
    ({"channel": "apns", "address": "x" * 2049}, "address"),
    ({"channel": "webhook", "address": "https://hook.example/\x7f"}, "address"),
    ({"channel": "push", "address": "https://"}, "address"),
    ({"channel": "fcm", "address": "tok en"}, "address"),
    ({"channel": "apns", "address": "not-hex-" * 8}, "address"),
    ({"channel": "webhook", "address": "file:///etc/passwd"}, "address"),
    ({"channel": "email", "address": "ann@example.com", "reason": ""}, "reason"),
    ({"channel": "email", "address": "ann@example.com", "reason": "a\nb"}, "reason"),
    ({"channel": "email", "address": "ann@example.com", "reason": "r" * 4001}, "reason"),
]


@pytest.mark.parametrize(("body", "field"), SUPPRESSIONS)
async def test_a_bad_suppression_is_422_naming_the_field(
        http: httpx.AsyncClient, broker: Broker, body: dict[str, Any], field: str) -> None:
    error = assert_error(await http.post("/v1/suppressions", json=body), 422,
                         "invalid_input", field=field)
    assert error["message"].endswith(".") and "\n" not in error["message"]
    assert len(error["message"]) < 250, error
    assert await broker.ledger.suppressions() == []  # nothing written


async def test_good_suppressions_are_kept(http: httpx.AsyncClient, broker: Broker) -> None:
    await broker.create_queue("notify-sms")
    good = [("email", "ann@example.com"), ("push", "https://push.example/sub/1"),
            ("fcm", "fcm-token:APA91b"), ("apns", "a" * 64),
            ("webhook", "https://hook.example/in"), ("apprise", "tgram://bot/chat"),
            ("sms", "+49 30 1234567")]
    for channel, address in good:
        got = await http.post("/v1/suppressions", json={"channel": channel,
                                                        "address": address})
        assert got.status_code == 204, (channel, got.text)
    listed = await http.get("/v1/suppressions")
    assert sorted((s["channel"], s["address"]) for s in listed.json()["suppressions"]) == \
        sorted(good)


async def test_the_openapi_document_names_the_refusals(http: httpx.AsyncClient) -> None:
    paths = (await http.get("/openapi.json")).json()["paths"]
    assert "channel" in paths["/v1/suppressions"]["post"]["responses"]["422"]["description"]
    for path in FILTERS:
        listed = paths[path]["get"]
        assert "unknown channel" in listed["responses"]["422"]["description"]
        [channel] = [p for p in listed["parameters"] if p["name"] == "channel"]
        assert "422" in channel["description"]


async def test_an_email_suppression_ignores_letter_case(http: httpx.AsyncClient,
                                                        broker: Broker) -> None:
    """`POST` with one case, the person's address in another: skipped when notified, and
    `DELETE` in a third case takes it off (it answered 404); a push endpoint keeps its
    case."""
    put = await http.put("/v1/recipients/dave",
                         json={"addresses": {"email": ["dave@example.com"]}})
    assert put.status_code in (200, 201), put.text
    got = await http.post("/v1/suppressions", json={"channel": "email",
                                                     "address": "dave@EXAMPLE.com"})
    assert got.status_code == 204, got.text
    again = await http.post("/v1/suppressions", json={"channel": "email",
                                                       "address": "Dave@Example.com"})
    assert again.status_code == 204, again.text
    listed = (await http.get("/v1/suppressions")).json()["suppressions"]
    assert [(s["channel"], s["address"]) for s in listed] == [("email", "dave@example.com")]
    assert await broker.ledger.suppressed("email", ["dave@example.com"]) == {
        "dave@example.com"}
    gone = await http.delete("/v1/suppressions", params={"channel": "email",
                                                         "address": "DAVE@example.COM"})
    assert gone.status_code == 204, gone.text
    assert (await http.get("/v1/suppressions")).json()["suppressions"] == []

    endpoint = "https://push.example/sub/AbC"
    assert (await http.post("/v1/suppressions", json={"channel": "push",
                                                      "address": endpoint})).status_code == 204
    assert_error(await http.delete("/v1/suppressions", params={
        "channel": "push", "address": endpoint.lower()}), 404, "suppression_not_found")
    assert await broker.ledger.suppressed("push", [endpoint.lower()]) == set()


@pytest.mark.parametrize("path", FILTERS)
async def test_a_repeated_channel_filter_is_422_naming_it(http: httpx.AsyncClient,
                                                          path: str) -> None:
    """`?channel=fax&channel=email` answered for email (the last one), as if the first
    were not there."""
    for query in ("channel=fax&channel=email", "channel=email&channel=email"):
        error = assert_error(await http.get(f"{path}?{query}"), 422, "invalid_input",
                             field="channel")
        assert error["message"] == ("The query parameter channel is given 2 times; "
                                    "give it once."), error


async def test_any_single_value_query_parameter_given_twice_is_422(
        http: httpx.AsyncClient, broker: Broker) -> None:
    """One rule for the API (`conveyor.http.deps.single_values`), not per route; a
    parameter no route takes stays ignored, and the dashboard reads its own query."""
    await broker.create_queue("notify-sms")
    for url, field in [("/v1/suppressions?limit=5&limit=6", "limit"),
                       ("/v1/queues?prefix=a&prefix=b", "prefix"),
                       ("/v1/jobs?state=failed&state=queued", "state"),
                       ("/v1/notifications/series?bucket=60&minutes=5&minutes=6", "minutes"),
                       ("/v1/suppressions?channel=sms&address=a&address=b", "address")]:
        method = "DELETE" if "address" in url else "GET"
        assert_error(await http.request(method, url), 422, "invalid_input", field=field)
    assert (await http.get("/v1/queues?prefix=a&other=1&other=2")).status_code == 200
    assert (await http.get("/v1/suppressions?channel=email&limit=5")).status_code == 200
    assert (await http.get("/?prefix=a&prefix=b")).status_code == 200


async def test_removing_on_an_unknown_channel_is_the_same_422(http: httpx.AsyncClient
                                                              ) -> None:
    """`DELETE` answered 404 `suppression_not_found` where `GET` and `POST` say the
    channel does not exist."""
    for method, call in [("GET", {"params": {"channel": "fax"}}),
                         ("POST", {"json": {"channel": "fax", "address": "x"}}),
                         ("DELETE", {"params": {"channel": "fax", "address": "x"}})]:
        error = assert_error(await http.request(method, "/v1/suppressions", **call), 422,
                             "invalid_input", field="channel")
        assert error["message"].startswith("No channel 'fax'; the channels are apns, ")
    listed = (await http.get("/openapi.json")).json()["paths"]["/v1/suppressions"]
    assert "unknown channel" in listed["delete"]["responses"]["422"]["description"]
