"""A running job's progress report on its status row, on both dialects."""

from __future__ import annotations

from conveyor.storage.base import JobRow, Storage


async def test_a_report_is_kept_until_another_replaces_it(storage: Storage, t0: int) -> None:
    def row(status: str, step: int, report: str | None) -> JobRow:
        return JobRow("j", status, "q", "t", 1, None, None, 60, step, report)

    await storage.job_put_many([row("running", 5, '{"done":1}')], t0)
    found = await storage.job_get("j", t0)
    assert found is not None and found.progress == {"done": 1}
    await storage.job_put_many([row("succeeded", 7, None)], t0)  # no report: keeps it
    found = await storage.job_get("j", t0)
    assert found is not None and (found.status, found.progress) == ("succeeded", {"done": 1})
    await storage.job_put_many([row("running", 3, '"late"')], t0)  # behind: ignored
    found = await storage.job_get("j", t0)
    assert found is not None and found.progress == {"done": 1}
