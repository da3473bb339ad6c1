"""Redrive: 200 when done within a second, 202 with a task to poll, list, cancel, conflicts."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.http.conftest import NewQueue
from tests.http.helpers import assert_error, receive, send, stats


def dead_letter(client: httpx.Client, new_queue: NewQueue, count: int) -> tuple[str, str]:
    """A source queue (max_receive_count 1) whose `count` messages are now in its DLQ."""
    dlq = new_queue("-dlq")
    source = new_queue("-src", max_receive_count=1, dead_letter_queue=dlq,
                       visibility_timeout=0)
    send(client, source, *range(count))
    assert len(receive(client, source, max_messages=1000)) == count
    assert receive(client, source, max_messages=1000) == []  # the next attempt dead-letters
    assert stats(client, dlq)["visible"] == count
    assert stats(client, source)["dead_letters"] == count
    return source, dlq


def test_redrive_small_queue_answers_200_completed(client: httpx.Client,
                                                   new_queue: NewQueue) -> None:
    source, dlq = dead_letter(client, new_queue, 3)
    response = client.post(f"/v1/queues/{dlq}/redrive")
    assert response.status_code == 200, response.text
    task = response.json()
    assert task["status"] == "completed"
    assert (task["moved"], task["to_move"]) == (3, 3)
    assert task["source_queue"] == dlq
    assert stats(client, dlq)["visible"] == 0
    back = receive(client, source, max_messages=10)
    assert sorted(m["body"] for m in back) == [0, 1, 2]
    assert all(m["receive_count"] == 1 for m in back)

    listed = client.get(f"/v1/queues/{dlq}/redrive")
    assert [t["id"] for t in listed.json()["tasks"]] == [task["id"]]
    assert client.get(f"/v1/tasks/{task['id']}").json() == task
    assert_error(client.post(f"/v1/tasks/{task['id']}/cancel"), 409, "conflict")


def test_slow_redrive_answers_202_then_can_be_cancelled(client: httpx.Client,
                                                        new_queue: NewQueue) -> None:
    _, dlq = dead_letter(client, new_queue, 4)
    response = client.post(f"/v1/queues/{dlq}/redrive", json={"max_per_second": 1})
    assert response.status_code == 202, response.text
    task: dict[str, Any] = response.json()
    assert task["status"] == "running"
    assert task["max_per_second"] == 1

    polled = client.get(f"/v1/tasks/{task['id']}")
    assert polled.status_code == 200
    assert polled.json()["status"] == "running"
    assert_error(client.post(f"/v1/queues/{dlq}/redrive"), 409, "conflict")

    cancelled = client.post(f"/v1/tasks/{task['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    time.sleep(0.2)
    assert client.get(f"/v1/tasks/{task['id']}").json()["status"] == "cancelled"
    assert stats(client, dlq)["visible"] > 0


def test_redrive_to_a_destination(client: httpx.Client, new_queue: NewQueue) -> None:
    _, dlq = dead_letter(client, new_queue, 2)
    elsewhere = new_queue("-dest")
    response = client.post(f"/v1/queues/{dlq}/redrive", json={"destination": elsewhere})
    assert response.status_code == 200, response.text
    assert response.json()["destination_queue"] == elsewhere
    assert stats(client, elsewhere)["visible"] == 2


def test_redrive_bad_input(client: httpx.Client, queue: str) -> None:
    assert_error(client.post(f"/v1/queues/{queue}/redrive", json={"max_per_second": 0}),
                 422, field="max_per_second")
    assert_error(client.post(f"/v1/queues/{queue}/redrive", json={"destination": "absent"}),
                 404, "queue_not_found")
    assert_error(client.post(f"/v1/queues/{queue}/redrive", json={"other": 1}), 422)
    assert_error(client.get("/v1/tasks/no-such-task"), 404, "task_not_found")
    assert_error(client.post("/v1/tasks/no-such-task/cancel"), 404, "task_not_found")


def test_redrive_of_a_queue_that_is_no_dead_letter_queue_is_refused(
        client: httpx.Client, new_queue: NewQueue) -> None:
    """It answered 200 "moved 0"; now a 422 that says why and starts nothing."""
    plain = new_queue("-plain")
    send(client, plain, "a", "b")
    error = assert_error(client.post(f"/v1/queues/{plain}/redrive"), 422,
                         "not_a_dead_letter_queue", field="queue")
    assert error["message"].startswith(f"Queue '{plain}' is no queue's dead-letter queue")
    assert "destination" in error["message"]
    assert client.get(f"/v1/queues/{plain}/redrive").json()["tasks"] == []
    assert stats(client, plain)["visible"] == 2
    # An explicit destination is the caller's to choose: the messages go there.
    elsewhere = new_queue("-dest")
    moved = client.post(f"/v1/queues/{plain}/redrive", json={"destination": elsewhere})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["moved"], stats(client, elsewhere)["visible"]) == (2, 2)


def test_an_empty_dead_letter_queue_is_still_redriven(client: httpx.Client,
                                                      new_queue: NewQueue) -> None:
    dlq = new_queue("-dlq")
    new_queue("-src", max_receive_count=1, dead_letter_queue=dlq)
    response = client.post(f"/v1/queues/{dlq}/redrive")
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["moved"]) == ("completed", 0)


def test_the_redrive_refusal_is_documented(client: httpx.Client) -> None:
    start = client.get("/openapi.json").json()["paths"]["/v1/queues/{queue}/redrive"]["post"]
    assert "not_a_dead_letter_queue" in start["responses"]["422"]["description"]
    assert "not_a_dead_letter_queue" in start["description"]


def test_redrive_destinations_that_are_refused(client: httpx.Client,
                                               new_queue: NewQueue) -> None:
    """An outside tester's findings: an empty destination moved messages back to their
    sources, the queue itself reset their receive counts, and a FIFO destination took a
    standard queue's messages (no group id) and never delivered them. Each is a 422 now,
    and nothing moves."""
    source, dlq = dead_letter(client, new_queue, 2)
    fifo = new_queue("-dest") + ".fifo"
    assert client.post("/v1/queues", json={"name": fifo}).status_code == 201
    for destination, code in (("", "invalid_input"), (dlq, "invalid_input"),
                              (fifo, "fifo_redrive_unsupported")):
        error = assert_error(client.post(f"/v1/queues/{dlq}/redrive",
                                         json={"destination": destination}),
                             422, code, field="destination")
        assert error["message"].count(". ") == 0, error  # one sentence
    assert client.get(f"/v1/queues/{dlq}/redrive").json()["tasks"] == []
    assert (stats(client, dlq)["visible"], stats(client, source)["visible"],
            stats(client, fifo)["visible"]) == (2, 0, 0)
    assert receive(client, fifo) == []
    # The dead letters still go back to their source.
    moved = client.post(f"/v1/queues/{dlq}/redrive")
    assert (moved.status_code, moved.json()["moved"]) == (200, 2)
    assert stats(client, source)["visible"] == 2
