"""Text storage cannot keep (a lone surrogate, a NUL character) and numbers JSON cannot
carry (NaN, 1e400) are refused on every JSON route with a 4xx and a code, on both
backends alike, and nothing is applied. Before, pydantic's routes answered 500 (surrogates;
NUL on PostgreSQL only) or kept NaN as null (an outside probe's findings)."""

from __future__ import annotations

import httpx

from conveyor.broker.broker import Broker
from tests.http.helpers import assert_error

JSON = {"content-type": "application/json"}
SURROGATE, NUL = "\\ud800", "\\u0000"


def flow(arg: str) -> str:
    return '{"steps": [{"task": "t", "queue": "fq", "args": [' + arg + "]}]}"


# (method, path, raw body with %s where the bad text goes); each body is valid otherwise.
TEXT: list[tuple[str, str, str]] = [
    ("post", "/v1/queues", '{"name": "q1", "attributes": {"tags": {"a": "x%s"}}}'),
    ("post", "/v1/queues", '{"name": "q2", "attributes": {"tags": {"a%s": "x"}}}'),
    ("patch", "/v1/queues/base", '{"attributes": {"kms_master_key_id": "k%s"}}'),
    ("post", "/v1/queues/base/messages",
     '{"messages": [{"body": "x", "claim": {"key": "k%s", "seconds": 10}}]}'),
    ("post", "/v1/queues/base/messages/delete", '{"receipt_handles": ["h%s"]}'),
    ("post", "/v1/queues/base/messages/visibility",
     '{"entries": [{"receipt_handle": "h%s", "visibility_timeout": 5}]}'),
    ("post", "/v1/queues/base/messages/retry", '{"receipt_handle": "h", "error": "e%s"}'),
    ("post", "/v1/flows", flow('"a%s"')),
    ("put", "/v1/jobs/j1", '{"status": "failed", "queue": "q", "task": "t", "error": "e%s"}'),
    ("put", "/v1/recipients/r1", '{"addresses": {"email": ["a%s@b.example"]}}'),
    ("post", "/v1/recipients/r1/notify", '{"category": "c%s", "template": "t"}'),
]


async def test_bad_text_is_refused_and_nothing_applied(http: httpx.AsyncClient,
                                                       broker: Broker) -> None:
    for bad in (SURROGATE, NUL):
        for method, path, raw in TEXT:
            got = await http.request(method, path, content=(raw % bad).encode(),
                                     headers=JSON)
            assert 400 <= got.status_code < 500, (bad, method, path, got.text)
            assert got.json()["error"]["code"] in ("invalid_input", "invalid_message"), (
                bad, method, path, got.text)
    assert {q.name for q in await broker.list_queues()} == {"base"}
    assert (await broker.get_queue("base")).attributes.kms_master_key_id is None
    assert (await broker.queue_stats("base")).total == 0
    assert await broker.jobs.status_get("j1") is None
    assert (await http.get("/v1/recipients/r1")).status_code == 404


async def test_nan_and_out_of_range_numbers_are_refused(http: httpx.AsyncClient,
                                                        broker: Broker) -> None:
    for raw in (flow("NaN"), flow("1e400"), flow("-Infinity"),
                '{"status": "succeeded", "queue": "q", "task": "t", "result": NaN}'):
        path = "/v1/flows" if raw.startswith('{"steps"') else "/v1/jobs/j2"
        got = await http.request("post" if path == "/v1/flows" else "put", path,
                                 content=raw.encode(), headers=JSON)
        assert_error(got, 400, "malformed_json")
    assert await broker.jobs.status_get("j2") is None
    if "fq" in {q.name for q in await broker.list_queues()}:
        assert (await broker.queue_stats("fq")).total == 0


async def test_a_redrive_allow_policy_must_be_one(http: httpx.AsyncClient,
                                                  broker: Broker) -> None:
    """Stored as given, a policy that is not one broke the SQS endpoint's CreateQueue of
    every queue naming this one as its dead-letter queue."""
    for policy in ("garbage", '["allowAll"]', '{"redrivePermission": "maybe"}',
                   '{"redrivePermission": "byQueue"}'):
        got = await http.patch("/v1/queues/base",
                               json={"attributes": {"redrive_allow_policy": policy}})
        assert_error(got, 422, "invalid_attribute", field="redrive_allow_policy")
    assert (await broker.get_queue("base")).attributes.redrive_allow_policy is None
    ok = '{"redrivePermission": "denyAll"}'
    got = await http.patch("/v1/queues/base", json={"attributes": {"redrive_allow_policy": ok}})
    assert got.status_code == 200 and got.json()["attributes"]["redrive_allow_policy"] == ok
