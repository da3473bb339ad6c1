"""A key scoped to some queues reaches no other queue through the routes whose path names
none (jobs, flows, move tasks, workers, the dashboard's job pages) or whose body names
another (a dead-letter queue, a redrive's destination): 403 `forbidden`, nothing changed.
In process (the app over httpx's ASGI transport), both backends, as test_api_keys.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from conveyor.broker.api_keys import ApiKeys
from conveyor.broker.broker import Broker
from conveyor.broker.dead_letters import SOURCE_ATTRIBUTE
from conveyor.errors import QueueNotFound
from conveyor.flows import FlowStep
from conveyor.heartbeats import Heartbeat
from conveyor.http.app import create_app
from conveyor.http.auth import Need, required
from conveyor.keys import ApiKey, parse_grants
from conveyor.models import Body, MessageAttribute, SendEntry
from tests.conftest import OpenBroker
from tests.jobs.test_explorer import dead_job


class Api:
    """The app with API keys on; `call` answers (status, JSON or None)."""

    def __init__(self, http: httpx.AsyncClient, broker: Broker, keys: ApiKeys) -> None:
        self.http, self.broker, self.keys = http, broker, keys
        self.tokens: dict[str, str] = {}

    async def key(self, name: str, *grants: str) -> str:
        _, self.tokens[name] = await self.keys.create(name, parse_grants(grants))
        return name

    async def call(self, key: str, method: str, path: str, body: object = None
                   ) -> tuple[int, Any]:
        answer = await self.http.request(method, path, json=body, headers={
            "authorization": f"Bearer {self.tokens[key]}"})
        if answer.status_code == 403:
            assert answer.json()["error"]["code"] == "forbidden", answer.text
            assert repr(key) in answer.json()["error"]["message"]
        is_json = answer.headers.get("content-type", "").startswith("application/json")
        return answer.status_code, answer.json() if is_json and answer.content else None


@contextlib.asynccontextmanager
async def keyed_api(open_broker: OpenBroker, monkeypatch: pytest.MonkeyPatch,
                    keys: dict[str, tuple[str, ...]]) -> AsyncIterator[Api]:
    """The app requiring keys, over httpx, with `keys` (name: its grants) made."""
    monkeypatch.setattr("conveyor.broker.api_keys.CACHE_SECONDS", 0.0)
    broker = await open_broker(stats_cache_seconds=0)
    app = create_app(broker, require_keys=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://localhost") as http:
        api = Api(http, broker, ApiKeys(broker, cache_seconds=0))
        for name, grants in keys.items():
            await api.key(name, *grants)
        yield api


@pytest.fixture
async def api(open_broker: OpenBroker, monkeypatch: pytest.MonkeyPatch
              ) -> AsyncIterator[Api]:
    async with keyed_api(open_broker, monkeypatch, {
            "teama": ("send,receive,manage:teama-*",), "rcv": ("receive:teama-*",),
            "ops": ("send,receive,manage",)}) as api:
        yield api


def test_every_queue_means_a_grant_on_star() -> None:
    # fnmatch reads the `*` of Need("send", "*") as a name, which `send:?` would match
    assert required("POST", "/v1/flows") == Need("send", "*")
    [narrow] = parse_grants(["send:?"])
    assert narrow.allows("send", "*")
    for grants, every in ((["send:?"], False), (["send:teama-*"], False), (["send"], True),
                          (["receive", "send:**"], True), (["receive"], False)):
        assert ApiKey("k", "k", parse_grants(grants), 0).allows_every("send") is every


async def test_dead_letter_queue_needs_send_on_it(api: Api) -> None:
    broker = api.broker
    for name in ("q1", "teama-dlq"):
        await broker.create_queue(name)
    foreign = {"dead_letter_queue": "q1", "max_receive_count": 1}
    assert (await api.call("teama", "POST", "/v1/queues/q1/messages",
                           {"messages": [{"body": "x"}]}))[0] == 403
    status, _ = await api.call("teama", "POST", "/v1/queues",
                               {"name": "teama-z", "attributes": foreign})
    assert status == 403
    with pytest.raises(QueueNotFound):
        await broker.get_queue("teama-z")
    own = {"dead_letter_queue": "teama-dlq", "max_receive_count": 1}
    status, _ = await api.call("teama", "POST", "/v1/queues",
                               {"name": "teama-z", "attributes": own})
    assert status == 201
    status, _ = await api.call("teama", "PATCH", "/v1/queues/teama-z",
                               {"attributes": foreign})
    assert status == 403
    assert (await broker.get_queue("teama-z")).attributes.dead_letter_queue == "teama-dlq"
    assert (await api.call("teama", "PATCH", "/v1/queues/teama-z",
                           {"attributes": {"paused": True}}))[0] == 200
    # a key on every queue, as before
    assert (await api.call("ops", "PATCH", "/v1/queues/teama-z",
                           {"attributes": foreign}))[0] == 200


async def test_redrive_destination_and_move_tasks_need_their_queues(api: Api) -> None:
    broker = api.broker
    for name in ("v1", "teama-dlq", "teama-back", "other-dlq"):
        await broker.create_queue(name)
    await broker.send("teama-dlq", [SendEntry(Body("dead"))])
    status, _ = await api.call("teama", "POST", "/v1/queues/teama-dlq/redrive",
                               {"destination": "v1"})
    assert status == 403
    assert await broker.peek("v1") == [] and len(await broker.peek("teama-dlq")) == 1
    status, task = await api.call("teama", "POST", "/v1/queues/teama-dlq/redrive",
                                  {"destination": "teama-back"})
    assert status == 200 and task["moved"] == 1
    assert (await api.call("teama", "GET", f"/v1/tasks/{task['id']}"))[0] == 200
    other = await broker.start_redrive("other-dlq", "v1")
    assert (await api.call("teama", "GET", f"/v1/tasks/{other.id}"))[0] == 403
    assert (await api.call("teama", "POST", f"/v1/tasks/{other.id}/cancel"))[0] == 403
    assert (await api.call("ops", "GET", f"/v1/tasks/{other.id}"))[0] == 200


async def test_job_status_reports_and_reads_need_receive_on_the_jobs_queue(api: Api) -> None:
    jobs = api.broker.jobs
    # Job ids are message ids (UUIDs): a report under any other is a 422 before any 403.
    FQ_JOB, OWN_JOB, NEW_JOB = (f"01900000-0000-7000-8000-00000000000{i}" for i in (1, 2, 3))
    await jobs.status_set(FQ_JOB, "running", queue="fq", task="t", attempts=1)
    await jobs.status_set(OWN_JOB, "running", queue="teama-a", task="t", attempts=1)
    done = {"status": "succeeded", "queue": "fq", "task": "t", "attempts": 1, "result": 1}
    assert (await api.call("rcv", "PUT", f"/v1/jobs/{FQ_JOB}", done))[0] == 403
    # naming its own queue does not overwrite another queue's job either
    assert (await api.call("rcv", "PUT", f"/v1/jobs/{FQ_JOB}",
                           {**done, "queue": "teama-a"}))[0] == 403
    batch = {"jobs": [{**done, "job_id": OWN_JOB, "queue": "teama-a"},
                      {**done, "job_id": FQ_JOB, "queue": "teama-a"}]}
    assert (await api.call("rcv", "POST", "/v1/jobs/status", batch))[0] == 403
    for job_id, queue in ((FQ_JOB, "fq"), (OWN_JOB, "teama-a")):
        found = await jobs.status_get(job_id)
        assert found is not None and (found.status, found.queue) == ("running", queue)
    assert (await api.call("rcv", "PUT", f"/v1/jobs/{NEW_JOB}", done))[0] == 403
    assert await jobs.status_get(NEW_JOB) is None
    assert (await api.call("rcv", "PUT", f"/v1/jobs/{OWN_JOB}",
                           {**done, "queue": "teama-a"}))[0] == 204
    assert (await jobs.status_get(OWN_JOB)).status == "succeeded"  # type: ignore[union-attr]

    for path in (f"/v1/jobs/{FQ_JOB}", "/v1/jobs?queue=fq", "/v1/jobs",
                 "/v1/jobs/counts", "/v1/jobs/counts?queue=fq"):
        assert (await api.call("rcv", "GET", path))[0] == 403, path
    status, page = await api.call("rcv", "GET", "/v1/jobs?queue=teama-a")
    assert status == 200 and [j["job_id"] for j in page["jobs"]] == [OWN_JOB]
    assert (await api.call("rcv", "GET", f"/v1/jobs/{OWN_JOB}"))[0] == 200
    assert (await api.call("rcv", "GET", "/v1/jobs/counts?queue=teama-a"))[0] == 200
    status, page = await api.call("ops", "GET", "/v1/jobs")
    assert status == 200 and {j["job_id"] for j in page["jobs"]} == {FQ_JOB, OWN_JOB}
    assert (await api.call("ops", "PUT", f"/v1/jobs/{FQ_JOB}", done))[0] == 204


async def test_flow_ends_and_trees_need_receive_on_the_nodes_queue(api: Api) -> None:
    broker = api.broker
    for name in ("fq", "teama-a"):
        await broker.create_queue(name)
    theirs = await broker.flows.create([FlowStep("child", "fq"),
                                        FlowStep("parent", "fq", after=[0])])
    ours = await broker.flows.create([FlowStep("child", "teama-a"),
                                      FlowStep("parent", "teama-a", after=[0])])
    await api.key("flows-narrow", "send:?", "receive:teama-*")
    assert (await api.call("flows-narrow", "POST", "/v1/flows",
                           {"steps": [{"task": "t", "queue": "fq"}]}))[0] == 403
    end = {"node": 0, "ok": True, "result": 1}
    assert (await api.call("rcv", "POST", "/v1/flows/ends", {"ends": [
        {**end, "flow_id": ours.flow_id}, {**end, "flow_id": theirs.flow_id}]}))[0] == 403
    for flow in (theirs, ours):
        states = [n.state for n in (await broker.flows.get(flow.flow_id)).nodes]
        assert states == ["queued", "waiting"]  # nothing ended, no parent released
    child = theirs.nodes[0].job_id
    for path in (f"/v1/flows/{theirs.flow_id}", f"/v1/jobs/{child}/flow",
                 f"/v1/flows/{theirs.flow_id}/nodes/1/results"):
        assert (await api.call("rcv", "GET", path))[0] == 403, path
    assert (await api.call("rcv", "POST", "/v1/flows/ends",
                           {"ends": [{**end, "flow_id": ours.flow_id}]}))[0] == 204
    status, tree = await api.call("rcv", "GET", f"/v1/flows/{ours.flow_id}")
    assert status == 200 and [n["state"] for n in tree["nodes"]] == ["succeeded", "queued"]
    status, results = await api.call(
        "rcv", "GET", f"/v1/flows/{ours.flow_id}/nodes/1/results")
    assert status == 200 and results == {"results": [1]}
    assert (await api.call("ops", "GET", f"/v1/flows/{theirs.flow_id}"))[0] == 200


async def test_job_explorer_actions_need_manage_on_the_jobs_queue(api: Api) -> None:
    broker = api.broker
    dead = await dead_job(broker, "fq")
    await broker.jobs.status_set("fq-queued", "queued", queue="fq", task="t")
    await broker.jobs.status_set("fq-done", "succeeded", queue="fq", task="t")
    await broker.jobs.status_set("own-done", "succeeded", queue="teama-a", task="t")
    for method, path in (("POST", f"/v1/jobs/{dead}/retry"), ("DELETE", f"/v1/jobs/{dead}"),
                         ("DELETE", "/v1/jobs/fq-done"), ("POST", "/v1/jobs/fq-queued/cancel")):
        assert (await api.call("teama", method, path))[0] == 403, path
    for action in ("retry", "delete", "cancel"):
        for where in ({"queue": "fq"}, {}):
            assert (await api.call("teama", "POST", f"/v1/jobs/{action}", where))[0] == 403
    statuses = {j.job_id: j.status for j in (await broker.jobs.list()).jobs}
    assert statuses == {dead: "dead", "fq-queued": "queued", "fq-done": "succeeded",
                        "own-done": "succeeded"}
    assert len(await broker.peek("fq-dlq")) == 1 and await broker.peek("fq") == []
    assert (await api.call("teama", "DELETE", "/v1/jobs/own-done"))[0] == 204
    status, deleted = await api.call("teama", "POST", "/v1/jobs/delete",
                                     {"queue": "teama-a"})
    assert status == 200 and deleted["deleted"] == 0
    status, retried = await api.call("ops", "POST", f"/v1/jobs/{dead}/retry")
    assert status == 200 and retried["status"] == "queued"


async def test_workers_show_and_beat_only_the_keys_queues(api: Api) -> None:
    await api.broker.workers.beat(Heartbeat("theirs", "h", 1, ("fq",), 1, 0, 60.0))
    beat = {"host": "h", "pid": 2, "queues": ["teama-a"], "concurrency": 1, "running": 0,
            "ttl_seconds": 60.0}
    assert (await api.call("rcv", "PUT", "/v1/workers/ours", beat))[0] == 204
    assert (await api.call("rcv", "PUT", "/v1/workers/forged",
                           {**beat, "queues": ["fq"]}))[0] == 403
    cron = {"name": "s", "task": "t", "queue": "fq", "schedule": "every 10 s",
            "next_run_at": 0}
    assert (await api.call("teama", "PUT", "/v1/workers/forged",
                           {**beat, "schedules": [cron]}))[0] == 403
    _, listed = await api.call("rcv", "GET", "/v1/workers")
    assert [w["worker_id"] for w in listed["workers"]] == ["ours"]
    _, listed = await api.call("ops", "GET", "/v1/workers")
    assert {w["worker_id"] for w in listed["workers"]} == {"ours", "theirs"}


async def test_dashboard_job_pages_and_dead_letters_keep_to_the_keys_queues(
        api: Api) -> None:
    broker = api.broker
    dead = await dead_job(broker, "fq")
    await broker.jobs.status_set("own-done", "succeeded", queue="teama-a", task="t")
    await broker.create_queue("teama-dlq")
    forged = SendEntry(Body("x"), attributes={
        SOURCE_ATTRIBUTE: MessageAttribute("String", "fq")})
    [copy] = await broker.send("teama-dlq", [forged])
    for path in (f"/ui/jobs/{dead}", "/ui/jobs?queue=fq"):
        assert (await api.call("teama", "GET", path))[0] == 403, path
    as_teama = {"authorization": f"Bearer {api.tokens['teama']}"}
    page = await api.http.get("/ui/jobs", headers=as_teama)
    assert page.status_code == 200 and "filter by one of them" in page.text
    assert dead not in page.text
    assert "own-done" in (await api.http.get("/ui/jobs?queue=teama-a", headers=as_teama)).text
    index = await api.http.get("/", headers=as_teama)
    assert "teama-dlq" in index.text and "fq-dlq" not in index.text
    token = api.http.cookies["conveyor_csrf"]

    async def post(path: str, **form: str) -> int:
        answer = await api.http.post(path, data={"csrf_token": token, **form},
                                     headers=as_teama)
        return answer.status_code

    for path in (f"/ui/jobs/{dead}/retry", f"/ui/jobs/{dead}/delete",
                 f"/ui/jobs/{dead}/cancel", "/ui/jobs/retry", "/ui/jobs/delete",
                 "/ui/jobs/cancel", f"/ui/queues/teama-dlq/messages/{copy.id}/redrive"):
        assert await post(path) == 403, path
    assert await post("/ui/jobs/delete", queue="fq") == 403
    assert (await broker.jobs.status_get(dead)) is not None
    assert len(await broker.peek("fq-dlq")) == 1 and await broker.peek("fq") == []
    assert len(await broker.peek("teama-dlq")) == 1
    assert await post("/ui/jobs/own-done/delete") == 303
    assert await broker.jobs.status_get("own-done") is None


def test_notify_queues_means_a_grant_on_all_of_them() -> None:
    # fnmatch reads the `*` of Need(..., "notify-*") as a character, which `?` matches
    [narrow] = parse_grants(["receive:notify-?"])
    assert narrow.allows("receive", "notify-*")
    for grants, every in ((["receive:notify-?"], False), (["receive:notify-?*"], False),
                          (["receive:notify-email"], False), (["receive:notify-*"], True),
                          (["receive:notify*"], True), (["receive:n*"], True),
                          (["receive:?otify-*"], True), (["receive:*-*"], True),
                          (["receive"], True), (["send:notify-*"], False)):
        assert ApiKey("k", "k", parse_grants(grants), 0).allows_prefix(
            "receive", "notify-") is every, grants
    assert ApiKey("k", "k", parse_grants(["send:?"]), 0).allows_prefix("send", "") is False
    assert ApiKey("k", "k", parse_grants(["send:**"]), 0).allows_prefix("send", "") is True


async def test_notification_data_needs_every_notify_queue(api: Api) -> None:
    await api.key("one-char", "receive,manage,send:notify-?")
    await api.key("notify", "receive,manage,send:notify-*")
    suppress = {"channel": "email", "address": "ann@example.com", "reason": "asked"}
    for method, path, body in (("GET", "/v1/suppressions", None),
                               ("GET", "/v1/notifications/series", None),
                               ("GET", "/ui/deliveries", None),
                               ("GET", "/v1/templates", None),
                               ("POST", "/v1/suppressions", suppress)):
        assert (await api.call("one-char", method, path, body))[0] == 403, path
    assert (await api.call("notify", "POST", "/v1/suppressions", suppress))[0] == 204
    status, listed = await api.call("notify", "GET", "/v1/suppressions")
    assert status == 200 and "ann@example.com" in str(listed)
