"""Ids no job or flow could have, on every route that takes one: a status report under one
is a 422 that writes nothing; reads and actions answer 404 (a job may be recorded in
process under an id of its own) or, for flows, whose ids only the broker makes, 422. Both
backends, the app in process over httpx's ASGI transport."""

from __future__ import annotations

import httpx
import pytest

from conveyor.broker.broker import Broker
from tests.http.helpers import assert_error

GOOD = "01900000-0000-7000-8000-000000000001"
MALFORMED = ("notauuid", "0190000000007000800000000000000z", "%20", "x" * 300)


async def _jobs(broker: Broker) -> dict[str, int]:
    return {k: v for k, v in (await broker.jobs.status_counts()).items() if v}


@pytest.mark.parametrize("job_id", MALFORMED)
async def test_a_status_report_under_a_malformed_id_is_422_and_writes_nothing(
        http: httpx.AsyncClient, broker: Broker, job_id: str) -> None:
    report = {"status": "queued", "queue": "q", "task": "t"}
    assert_error(await http.put(f"/v1/jobs/{job_id}", json=report), 422, "invalid_input",
                 field="job_id")
    batch = {"jobs": [{"job_id": GOOD, **report}, {"job_id": job_id, **report}]}
    assert_error(await http.post("/v1/jobs/status", json=batch), 422, "invalid_input",
                 field="job_id", index=1)
    assert await _jobs(broker) == {}  # not even the batch's good entry
    assert await broker.jobs.status_get(job_id[:200]) is None


async def test_a_report_under_a_job_id_is_stored_in_its_canonical_form(
        http: httpx.AsyncClient, broker: Broker) -> None:
    report = {"status": "queued", "queue": "q", "task": "t"}
    answer = await http.put(f"/v1/jobs/{GOOD.upper()}", json=report)
    assert answer.status_code == 204, answer.text
    found = await http.get(f"/v1/jobs/{GOOD}")
    assert found.status_code == 200 and found.json()["job_id"] == GOOD


@pytest.mark.parametrize(("method", "path", "status", "code"), [
    ("GET", "/v1/jobs/notauuid", 404, "job_not_found"),
    ("DELETE", "/v1/jobs/notauuid", 404, "job_not_found"),
    ("POST", "/v1/jobs/notauuid/retry", 404, "job_not_found"),
    ("POST", "/v1/jobs/notauuid/cancel", 404, "job_not_found"),
    ("GET", "/v1/jobs/notauuid/flow", 404, "flow_not_found"),
    ("GET", f"/v1/jobs/{GOOD}/flow", 404, "flow_not_found"),
    ("GET", "/v1/flows/notauuid", 422, "invalid_input"),
    ("GET", "/v1/flows/notauuid/nodes/0/results", 422, "invalid_input"),
    ("GET", f"/v1/flows/{GOOD}", 404, "flow_not_found"),
    ("GET", f"/v1/flows/{GOOD}/nodes/0/results", 404, "flow_not_found"),
])
async def test_reads_and_actions_answer_malformed_ids_with_a_code(
        http: httpx.AsyncClient, broker: Broker, method: str, path: str, status: int,
        code: str) -> None:
    assert_error(await http.request(method, path), status, code)
    assert await _jobs(broker) == {}
