"""Task frameworks on their own SQS transports, unchanged but for the endpoint URL:
Celery (kombu's SQS transport, with a retry) and Dramatiq (dramatiq-sqs, with its
dead-letter queue)."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from dramatiq.middleware import Retries
from dramatiq_sqs import SQSBroker

from tests.sqs.server import SqsServer


@pytest.fixture
def celery_app(sqs_server: SqsServer) -> Iterator[Celery]:
    host_port = sqs_server.endpoint.removeprefix("http://")
    app = Celery(f"conveyor-{uuid.uuid4().hex[:6]}", broker=f"sqs://x:x@{host_port}",
                 set_as_current=False)
    app.conf.update(
        broker_transport_options={
            "region": "us-east-1", "is_secure": False, "wait_time_seconds": 1,
            "polling_interval": 0.1, "visibility_timeout": 30,
            "queue_name_prefix": f"celery-{uuid.uuid4().hex[:8]}-"},
        task_default_queue="jobs", worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True, task_acks_late=True,
        worker_prefetch_multiplier=1)
    yield app
    app.close()


# kombu's SQS transport polls through pycurl, which warns about calls kombu makes.
@pytest.mark.filterwarnings("ignore:.* is deprecated; use .*:DeprecationWarning")
def test_celery_runs_and_retries_tasks_over_sqs(celery_app: Celery) -> None:
    done = threading.Event()
    calls: list[tuple[int, int]] = []

    @celery_app.task(bind=True, name=f"flaky_add_{uuid.uuid4().hex}", max_retries=3)
    def flaky_add(self: Any, a: int, b: int) -> int:
        calls.append((a, b))
        if self.request.retries == 0:
            raise self.retry(countdown=0)  # fail once, as a real flaky job would
        done.set()
        return a + b

    with start_worker(celery_app, pool="solo", perform_ping_check=False,
                      shutdown_timeout=10):
        flaky_add.delay(2, 3)
        assert done.wait(30), f"the task did not finish (calls: {calls})"
    assert calls == [(2, 3), (2, 3)]


def test_dramatiq_runs_actors_and_dead_letters_over_sqs(sqs_server: SqsServer) -> None:
    broker = SQSBroker(namespace=f"dq{uuid.uuid4().hex[:8]}", dead_letter=True,
                       endpoint_url=sqs_server.endpoint, region_name="us-east-1",
                       aws_access_key_id="x", aws_secret_access_key="x",
                       middleware=[Retries(max_retries=0)])
    ran = threading.Event()

    @dramatiq.actor(broker=broker, queue_name="mail")
    def send_mail(address: str) -> None:
        ran.set()

    @dramatiq.actor(broker=broker, queue_name="mail")
    def broken(address: str) -> None:
        raise RuntimeError(f"cannot reach {address}")

    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        send_mail.send("ada@example.com")
        broken.send("bob@example.com")
        assert ran.wait(30)
        broker.join("mail", timeout=30_000)
    finally:
        worker.stop()
        broker.close()
    dead = broker.dead_letter_queues["mail"].receive_messages(MaxNumberOfMessages=10,
                                                              WaitTimeSeconds=1)
    assert len(dead) == 1
    assert json.loads(base64.b64decode(dead[0].body))["args"] == ["bob@example.com"]
