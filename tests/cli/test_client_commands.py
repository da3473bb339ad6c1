"""`conveyor queue|send|receive|redrive` against a real server."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime

import httpx

from conveyor.ids import new_message_ids
from conveyor.models import QueueAttributes
from tests.cli.conftest import Run, run_conveyor
from tests.http.server import ServerProcess


def lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_queue_lifecycle(conveyor: Run) -> None:
    created = conveyor("queue", "create", "orders", "--attr", "visibility_timeout=60",
                       "--attr", 'tags={"team": "shop"}')
    assert "orders" in created.stdout
    again = conveyor("queue", "create", "orders", "--attr", "visibility_timeout=60",
                     "-o", "json")
    assert lines(again.stdout)[0]["attributes"]["visibility_timeout"] == 60  # type: ignore[index]

    listed = conveyor("queue", "list")
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "VISIBLE", "IN_FLIGHT", "DELAYED"]
    assert any(row.split()[0] == "orders" for row in rows)

    stats = conveyor("queue", "stats", "orders")
    assert "visibility_timeout" in stats.stdout and "60" in stats.stdout

    conveyor("queue", "pause", "orders")
    conveyor("send", "orders", "held")
    assert conveyor("receive", "orders").stdout == ""
    conveyor("queue", "resume", "orders")
    purged = conveyor("queue", "purge", "orders", "-o", "json")
    assert lines(purged.stdout) == [{"queue": "orders", "purged": 1}]
    assert "deleted" in conveyor("queue", "delete", "orders").stdout
    missing = conveyor("queue", "stats", "orders", ok=False)
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr and "queue_not_found" in missing.stderr


def test_send_and_receive_text_json_and_stdin(conveyor: Run) -> None:
    conveyor("queue", "create", "mail")
    text_id = conveyor("send", "mail", '{"a": 1}').stdout.strip()
    json_id = conveyor("send", "mail", '{"a": 1}', "--json", "--priority", "9").stdout.strip()
    conveyor("send", "mail", "-", stdin="from stdin\n")
    dedup = conveyor("send", "mail", "x", "--dedup-id", "once", "-o", "json").stdout
    repeat = conveyor("send", "mail", "y", "--dedup-id", "once", "-o", "json").stdout
    assert lines(repeat)[0]["id"] == lines(dedup)[0]["id"]
    assert lines(repeat)[0]["duplicate"] is True
    conveyor("send", "mail", "later", "--delay", "60", "--attr", "kind=welcome",
             "--attr", "n=3")

    got = lines(conveyor("receive", "mail", "--max", "10", "--delete").stdout)
    by_id = {m["id"]: m for m in got}
    assert by_id[json_id]["body"] == {"a": 1}
    assert by_id[text_id]["body"] == '{"a": 1}'
    assert got[0]["id"] == json_id  # priority 9 first
    assert {m["body"] for m in got if isinstance(m["body"], str)} >= {"from stdin\n", "x"}
    assert len(got) == 4  # the delayed one is not visible yet
    assert conveyor("receive", "mail").stdout == ""
    stats = json.loads(conveyor("queue", "stats", "mail", "-o", "json").stdout)["stats"]
    assert (stats["in_flight"], stats["delayed"]) == (0, 1)


def test_receive_with_wait_and_visibility(conveyor: Run) -> None:
    conveyor("queue", "create", "slow")
    assert conveyor("receive", "slow", "--wait", "1").stdout == ""
    conveyor("send", "slow", "job")
    [message] = lines(conveyor("receive", "slow", "--visibility", "0").stdout)
    assert message["receive_count"] == 1
    [again] = lines(conveyor("receive", "slow").stdout)  # visibility 0: visible at once
    assert again["receive_count"] == 2


def test_redrive(conveyor: Run, server: ServerProcess) -> None:
    conveyor("queue", "create", "work-dlq")
    conveyor("queue", "create", "work", "--attr", "max_receive_count=1",
             "--attr", "dead_letter_queue=work-dlq", "--attr", "visibility_timeout=0")
    conveyor("send", "work", "poison")
    conveyor("receive", "work")
    conveyor("receive", "work")  # the second attempt dead-letters it
    assert httpx.get(f"{server.url}/v1/queues/work-dlq").json()["stats"]["visible"] == 1
    result = conveyor("redrive", "work-dlq")
    assert "completed, moved 1 of 1" in result.stdout
    assert [m["body"] for m in lines(conveyor("receive", "work").stdout)] == ["poison"]
    conveyor("send", "work-dlq", "sent straight here")  # no source queue to go back to
    nothing = conveyor("redrive", "work-dlq")
    assert nothing.stdout.startswith("nothing to move: work-dlq holds no message"), \
        nothing.stdout
    assert "--destination" in nothing.stdout


def test_redrive_of_a_queue_that_is_no_dead_letter_queue_is_refused(conveyor: Run) -> None:
    """It printed "nothing to move"; the server's refusal is one line with its code."""
    conveyor("queue", "create", "not-a-dlq")
    conveyor("send", "not-a-dlq", "stays")
    refused = conveyor("redrive", "not-a-dlq", ok=False)
    assert refused.returncode == 1 and refused.stdout == ""
    [line] = refused.stderr.splitlines()
    assert line.startswith("conveyor: error: Queue 'not-a-dlq' is no queue's dead-letter "
                           "queue")
    assert line.endswith("[not_a_dead_letter_queue]")
    conveyor("queue", "create", "not-a-dlq-dest")
    moved = conveyor("redrive", "not-a-dlq", "--destination", "not-a-dlq-dest")
    assert "completed, moved 1 of 1" in moved.stdout


def test_bad_input_exits_1_with_the_servers_message(conveyor: Run) -> None:
    conveyor("queue", "create", "strict")
    bad = conveyor("send", "strict", "x", "--priority", "12", ok=False)
    assert bad.returncode == 1
    assert "priority must be between 0 and 9" in bad.stderr
    invalid = conveyor("queue", "create", "bad name", ok=False)
    assert invalid.returncode == 1 and "invalid_queue_name" in invalid.stderr
    not_json = conveyor("send", "strict", "{oops", "--json", ok=False)
    assert not_json.returncode != 0 and "not valid JSON" in not_json.stderr
    usage = conveyor("send", ok=False)
    assert usage.returncode == 2


def test_unreachable_server() -> None:
    result = run_conveyor("queue", "list", "--url", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert "Cannot reach http://127.0.0.1:9" in result.stderr


def test_job_status_and_counts(conveyor: Run, server: ServerProcess) -> None:
    # A server takes reports under job ids (UUIDs) only.
    job_1, job_2, job_3 = new_message_ids(3)
    recorded = {"jobs": [
        {"job_id": job_1, "status": "failed", "queue": "mail", "task": "welcome",
         "attempts": 2, "error": "SMTP 451: try later"},
        {"job_id": job_2, "status": "succeeded", "queue": "mail", "task": "welcome",
         "attempts": 1, "result": {"sent": True}},
        {"job_id": job_3, "status": "queued", "queue": "push", "task": "notify"}]}
    assert httpx.post(f"{server.url}/v1/jobs/status", json=recorded).status_code == 204

    shown = conveyor("job", "status", job_1).stdout
    assert "failed" in shown and "SMTP 451: try later" in shown and "welcome" in shown
    as_json = lines(conveyor("job", "status", job_2, "-o", "json").stdout)[0]
    assert as_json["result"] == {"sent": True} and as_json["attempts"] == 1

    counts = lines(conveyor("job", "counts", "--queue", "mail", "-o", "json").stdout)[0]
    assert counts["counts"]["failed"] == 1 and counts["counts"]["succeeded"] == 1  # type: ignore[index]
    assert counts["counts"]["queued"] == 0  # type: ignore[index]
    header, *rows = conveyor("job", "counts").stdout.splitlines()
    assert header.split() == ["STATUS", "JOBS"]
    assert [row.split() for row in rows][:2] == [["queued", "1"], ["running", "0"]]

    missing = conveyor("job", "status", "no-such-job", ok=False)
    assert missing.returncode == 1 and "job_not_found" in missing.stderr


def test_queue_create_lists_and_takes_sqs_spellings(conveyor: Run) -> None:
    helped = conveyor("queue", "create", "--help").stdout
    for name in QueueAttributes.__dataclass_fields__:  # every attribute is explained
        assert re.search(rf"^  {name} +\S", helped, re.MULTILINE), name
    conveyor("queue", "create", "sqs-dlq")
    made = lines(conveyor(
        "queue", "create", "sqs-named", "-o", "json", "--attr", "VisibilityTimeout=45",
        "--attr", "MessageRetentionPeriod=3600", "--attr", "maxReceiveCount=4",
        "--attr", "deadLetterTargetArn=arn:aws:sqs:us-east-1:000000000000:sqs-dlq").stdout)
    attributes = made[0]["attributes"]
    assert attributes == {**attributes, "visibility_timeout": 45, "retention_seconds": 3600,
                          "max_receive_count": 4, "dead_letter_queue": "sqs-dlq"}
    policy = conveyor("queue", "create", "sqs-policy", "-o", "json", "--attr",
                      'RedrivePolicy={"maxReceiveCount": 2, "deadLetterTargetArn": "sqs-dlq"}')
    assert lines(policy.stdout)[0]["attributes"]["max_receive_count"] == 2  # type: ignore[index]
    typo = conveyor("queue", "create", "sqs-typo", "--attr", "visiblity_timeout=5", ok=False)
    assert typo.returncode == 1
    assert "Did you mean 'visibility_timeout'?" in typo.stderr, typo.stderr


def test_receive_as_a_table(conveyor: Run) -> None:
    conveyor("queue", "create", "people")
    empty = conveyor("receive", "people", "-o", "table")
    assert empty.stdout == "" and "no messages" in empty.stderr
    sent = conveyor("send", "people", "line one\nline two").stdout.strip()
    before = time.time()
    header, row = conveyor("receive", "people", "-o", "table").stdout.splitlines()
    assert header.split() == ["ID", "RECEIVES", "SENT", "(UTC)", "LEASED", "UNTIL", "(UTC)",
                              "BODY"]
    assert row.startswith(sent) and row.endswith("line one\\nline two")
    sent_at = re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}", row)
    assert sent_at is not None
    at = datetime.strptime(sent_at.group(), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
    assert abs(at.timestamp() - before) < 60


def test_job_list_retry_and_delete(conveyor: Run, server: ServerProcess) -> None:
    (done_1,) = new_message_ids(1)  # a server takes reports under job ids (UUIDs) only
    conveyor("queue", "create", "work-dlq")
    conveyor("queue", "create", "work", "--attr", "dead_letter_queue=work-dlq",
             "--attr", "max_receive_count=1")
    job_id = conveyor("send", "work", '{"task": "t", "args": [], "kwargs": {}}').stdout.strip()
    conveyor("receive", "work", "--visibility", "0")
    assert conveyor("receive", "work").stdout == ""  # received once too often: dead-lettered
    recorded = {"jobs": [
        {"job_id": job_id, "status": "dead", "queue": "work", "task": "t", "attempts": 1,
         "error": "ValueError: boom\nTraceback ..."},
        {"job_id": done_1, "status": "succeeded", "queue": "work", "task": "t",
         "attempts": 1}]}
    assert httpx.post(f"{server.url}/v1/jobs/status", json=recorded).status_code == 204

    header, *rows = conveyor("job", "list", "--queue", "work").stdout.splitlines()
    assert header.split()[:3] == ["JOB", "STATE", "QUEUE"] and len(rows) == 2
    updated = rows[0].split()[header.split().index("UPDATED")]
    assert datetime.fromisoformat(updated).tzinfo is not None  # as `job show` prints it
    dead = lines(conveyor("job", "list", "--state", "dead", "-o", "json").stdout)
    assert [(j["job_id"], j["error"]) for j in dead] == [(job_id, recorded["jobs"][0]["error"])]
    paged = conveyor("job", "list", "--queue", "work", "--limit", "1")
    assert "more: --after " in paged.stderr

    assert "queued" in conveyor("job", "retry", job_id).stdout
    [back] = lines(conveyor("receive", "work", "-o", "json").stdout)
    assert back["id"] == job_id
    refused = conveyor("job", "retry", job_id, ok=False)
    assert refused.returncode == 1 and "job_not_retryable" in refused.stderr
    assert "deleted" in conveyor("job", "delete", done_1).stdout
    assert conveyor("job", "list", "--queue", "work", "--state", "succeeded"
                    ).stdout.splitlines()[1:] == []


def test_job_list_by_key_and_time_and_job_show(conveyor: Run, server: ServerProcess) -> None:
    base = {"queue": "shown", "task": "tasks.bill"}
    bill_1, bill_2 = new_message_ids(2)
    first = [{**base, "job_id": bill_1, "status": "queued", "key": "acme",
              "args": {"args": [1], "kwargs": {"to": "a@example.com"}}},
             {**base, "job_id": bill_2, "status": "queued", "key": "zeta"}]
    assert httpx.post(f"{server.url}/v1/jobs/status", json={"jobs": first}).status_code == 204
    created = httpx.get(f"{server.url}/v1/jobs/{bill_1}").json()["created_at"]
    ended = [{**base, "job_id": bill_1, "status": "dead", "attempts": 1, "worker": "w-9",
              "error": "KeyError: 'plan'", "started_at": created + 5, "ended_at": created + 9,
              "traceback": "Traceback (most recent call last):\nKeyError: 'plan'"}]
    assert httpx.post(f"{server.url}/v1/jobs/status", json={"jobs": ended}).status_code == 204

    by_key = lines(conveyor("job", "list", "--key", "acme", "-o", "json").stdout)
    assert [j["job_id"] for j in by_key] == [bill_1]
    since = datetime.fromtimestamp(created / 1000, UTC).isoformat()
    window = lines(conveyor("job", "list", "--queue", "shown", "--created-since", since,
                            "--created-until", str(created + 3_600_000), "-o", "json").stdout)
    assert {j["job_id"] for j in window} == {bill_1, bill_2}
    assert lines(conveyor("job", "list", "--queue", "shown", "--created-until",
                          str(created), "-o", "json").stdout) == []
    bad = conveyor("job", "list", "--created-since", "last tuesday", ok=False)
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr

    shown = conveyor("job", "show", bill_1).stdout
    assert "acme" in shown and '"to":"a@example.com"' in shown
    assert "w-9" in shown and "KeyError: 'plan'" in shown
    assert "attempt 1 traceback:\nTraceback (most recent call last):" in shown
    assert "created" in shown and "dead" in shown
    [page] = lines(conveyor("job", "show", bill_1, "-o", "json").stdout)
    assert [a["outcome"] for a in page["attempt_history"]] == ["dead"]  # type: ignore[union-attr]
    missing = conveyor("job", "show", "no-such-job", ok=False)
    assert missing.returncode == 1 and "job_not_found" in missing.stderr
