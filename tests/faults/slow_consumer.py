"""A consumer for the SIGSTOP test: receive one message, work for a while, then ack.

Usage: python slow_consumer.py BASE_URL QUEUE WORK_SECONDS
Prints `got ID HANDLE` after the receive and `ack STATUS` after the delete.
"""

from __future__ import annotations

import sys
import time

import httpx


def main() -> None:
    base, queue, work = sys.argv[1], sys.argv[2], float(sys.argv[3])
    with httpx.Client(base_url=base, timeout=30) as client:
        answer = client.post(f"/v1/queues/{queue}/messages/receive",
                             json={"max_messages": 1, "wait_seconds": 5})
        [message] = answer.json()["messages"]
        print("got", message["id"], message["receipt_handle"], flush=True)
        time.sleep(work)  # frozen here by the test, past the lease
        answer = client.post(f"/v1/queues/{queue}/messages/delete",
                             json={"receipt_handles": [message["receipt_handle"]]})
        print("ack", answer.json()["results"][0]["status"], flush=True)


if __name__ == "__main__":
    main()
