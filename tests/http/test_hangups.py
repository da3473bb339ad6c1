"""A long poll whose client has gone leases nothing: the message sent after the client
left goes to the consumer still waiting, not to the dead one (an outside fault probe: with
`max_receive_count` 1 it went to the dead-letter queue unrun, 5 of 5). A real server on
loopback, real sockets closed mid-poll; the SQS endpoint's twin is in tests/sqs."""

from __future__ import annotations

import httpx

from tests.http.conftest import NewQueue
from tests.http.server import ServerProcess
from tests.support.hangup import abandon


def test_a_native_long_poll_whose_client_left_leases_nothing(
        server: ServerProcess, client: httpx.Client, new_queue: NewQueue) -> None:
    dlq = new_queue("-dlq")
    queue = new_queue(dead_letter_queue=dlq, max_receive_count=1)
    for _ in range(3):
        abandon(server.url, f"/v1/queues/{queue}/messages/receive",
                b'{"wait_seconds": 20, "max_messages": 10}',
                {"Content-Type": "application/json"})
    sent = client.post(f"/v1/queues/{queue}/messages", json={"messages": [{"body": "x"}]})
    assert sent.status_code == 201
    got = client.post(f"/v1/queues/{queue}/messages/receive",
                      json={"wait_seconds": 5}).json()["messages"]
    assert [(m["body"], m["receive_count"]) for m in got] == [("x", 1)]
    stats = client.get(f"/v1/queues/{dlq}").json()["stats"]
    assert stats["visible"] == 0
