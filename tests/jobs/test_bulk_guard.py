"""Bulk job actions (retry, delete, cancel many) refuse an empty filter unless the caller
says "all" explicitly: in-process (`all_jobs=True`), over HTTP (`"all": true`, else 422
`invalid_input` on `all`), from the CLI (`--all`, else exit status 2) and the dashboard
(its unfiltered bulk forms send `all`). Both backends."""

from __future__ import annotations

import httpx
import pytest

from conveyor.broker.broker import Broker
from conveyor.errors import InvalidInput
from conveyor.jobs import JobFilter, JobStatus
from tests.cli.conftest import run_conveyor
from tests.http.helpers import assert_error
from tests.http.server import ServerProcess
from tests.jobs.test_explorer import dead_job


async def _seed(broker: Broker) -> str:
    """One dead job (with its dead letter), one succeeded, two queued; the dead one's id."""
    dead = await dead_job(broker)
    await broker.jobs.status_set_many([
        JobStatus("ok", "succeeded", "work", "t", attempts=1),
        JobStatus("w0", "queued", "work", "t"), JobStatus("w1", "queued", "work", "t")])
    return dead


async def _states(broker: Broker) -> dict[str, str]:
    return {j.job_id: j.status for j in (await broker.jobs.list()).jobs}


async def test_empty_filter_is_refused_in_process(broker: Broker) -> None:
    dead = await _seed(broker)
    before = await _states(broker)
    for action in (broker.jobs.retry_many, broker.jobs.delete_many,
                   broker.jobs.cancel_many):
        for where in (None, JobFilter()):
            with pytest.raises(InvalidInput) as refused:
                await action(where)
            assert refused.value.field == "all"
            assert "all: true" in refused.value.message
    assert await _states(broker) == before
    assert len(await broker.peek("work-dlq")) == 1
    # A filter of only the state is a filter (w0, w1 have no message: their cancel
    # requests wait for a worker, so they stay queued).
    done, _, _ = await broker.jobs.cancel_many(JobFilter(state="queued"))
    assert sorted(j.job_id for j in done) == ["w0", "w1"]
    assert sorted(await broker.jobs.cancel_requests(["w0", "w1", "ok"])) == ["w0", "w1"]
    # The explicit all acts on every job.
    retried, _, _ = await broker.jobs.retry_many(all_jobs=True)
    assert [j.job_id for j in retried] == [dead]
    deleted, after = await broker.jobs.delete_many(JobFilter(), all_jobs=True)
    assert (deleted, after) == (1, None)  # "ok", the one ended job
    assert await broker.jobs.status_get("ok") is None


async def test_empty_filter_is_refused_over_http(http: httpx.AsyncClient,
                                                 broker: Broker) -> None:
    dead = await _seed(broker)
    before = await _states(broker)
    for action in ("retry", "delete", "cancel"):
        for body in ({}, {"limit": 10}, {"all": False}):
            response = await http.post(f"/v1/jobs/{action}", json=body)
            assert_error(response, 422, "invalid_input", field="all")
            assert "all: true" in response.json()["error"]["message"]
    assert await _states(broker) == before
    assert len(await broker.peek("work-dlq")) == 1
    # JSON 1 is not true (the bulk models are strict).
    assert_error(await http.post("/v1/jobs/cancel", json={"all": 1}), 422,
                 "invalid_input", field="all")
    cancelled = await http.post("/v1/jobs/cancel", json={"all": True})
    assert cancelled.status_code == 200
    assert sorted(j["job_id"] for j in cancelled.json()["cancelled"]) == ["w0", "w1"]
    retried = await http.post("/v1/jobs/retry", json={"all": True})
    assert [j["job_id"] for j in retried.json()["retried"]] == [dead]
    deleted = await http.post("/v1/jobs/delete", json={"all": True})
    assert deleted.status_code == 200 and deleted.json() == {"deleted": 1, "next": None}
    assert await broker.jobs.status_get("ok") is None


async def test_openapi_documents_all(http: httpx.AsyncClient) -> None:
    schema = (await http.get("/openapi.json")).json()
    field = schema["components"]["schemas"]["BulkRequest"]["properties"]["all"]
    assert field["type"] == "boolean" and field["default"] is False


async def test_dashboard_bulk_forms_send_all_only_without_a_filter(
        http: httpx.AsyncClient, broker: Broker) -> None:
    dead = await _seed(broker)
    unfiltered = (await http.get("/ui/jobs")).text
    assert unfiltered.count('name="all" value="true"') == 3  # retry, cancel, delete
    assert 'name="all"' not in (await http.get("/ui/jobs?queue=work")).text
    token = http.cookies["conveyor_csrf"]
    before = await _states(broker)
    refused = await http.post("/ui/jobs/delete", data={"csrf_token": token})
    assert refused.status_code == 303 and "error=" in refused.headers["location"]
    assert await _states(broker) == before
    done = await http.post("/ui/jobs/delete", data={"csrf_token": token, "all": "true"})
    assert "Deleted+2+ended+jobs" in done.headers["location"]  # the dead one and "ok"
    assert sorted(await _states(broker)) == ["w0", "w1"] and dead not in await _states(broker)


def test_cli_cancel_without_filter_needs_all(sqlite_server: ServerProcess) -> None:
    url = sqlite_server.url
    job = "01900000-0000-7000-8000-0000000000d0"
    httpx.put(f"{url}/v1/jobs/{job}", json={"status": "queued", "queue": "cli",
                                            "task": "t"}).raise_for_status()
    env = {"CONVEYOR_URL": url}
    refused = run_conveyor("job", "cancel", env=env)
    assert refused.returncode == 2 and refused.stdout == ""
    assert "--all" in refused.stderr and "filter" in refused.stderr
    assert httpx.get(f"{url}/v1/jobs/{job}").json()["status"] == "queued"
    assert httpx.post(f"{url}/v1/jobs/cancel-requests",
                      json={"job_ids": [job]}).json() == {"job_ids": []}
    done = run_conveyor("job", "cancel", "--all", env=env)
    assert done.returncode == 0 and "cancelled 1 jobs" in done.stdout
    assert httpx.post(f"{url}/v1/jobs/cancel-requests",
                      json={"job_ids": [job]}).json() == {"job_ids": [job]}
